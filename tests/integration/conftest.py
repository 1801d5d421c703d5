"""Fixtures that run chapter 4's services as real processes, through the harness's own Service."""
import sys
import time
import uuid
from functools import cached_property
from pathlib import Path

import pytest

from demos.message_queues.store import Database
from load.harness import Service, get_json, http_ready, log_ready, wait_for
from load.servers import free_port


class Registration:
    """A running variant (and its workers) with its data in a temp folder, or in ``database_url``."""

    def __init__(self, folder: Path, variant: str, broker_url: str = "", env: dict | None = None,
                 database_url: str = ""):
        self.folder, self.variant = folder, variant
        # its own queues on a shared broker: a job an earlier test left behind is never this test's
        self.env = {"DATA_DIR": str(folder / "data"), "BROKER_URL": broker_url,
                    "DATABASE_URL": database_url, "QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:12]}", **(env or {})}
        self.services: list[Service] = []
        self.workers = 0
        self.url = ""

    def start(self, threads: int = 1) -> "Registration":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._start(self.variant, [sys.executable, "-m", f"demos.message_queues.{self.variant}",
                                   "--port", str(port), "--threads", str(threads)],
                    http_ready(f"{self.url}/health"))
        return self

    def start_worker(self, *args: str) -> Service:
        self.workers += 1
        name = f"worker-{self.workers}"
        log = self.folder / f"{name}.log"
        return self._start(name, [sys.executable, "-m", "demos.message_queues.worker", *args],
                           log_ready(log, "worker ready"))

    def _start(self, name, argv, ready) -> Service:
        service = Service(name, argv, log_path=self.folder / f"{name}.log", ready=ready, env=self.env)
        self.services.append(service)
        return service.start()

    @cached_property
    def database(self) -> Database:
        """The database the services use (opened by the test itself, to read what they wrote)."""
        return Database(self.env["DATABASE_URL"] or f"sqlite:///{self.folder / 'data' / 'registrations.db'}")

    def audit(self) -> dict:
        return get_json(f"{self.url}/audit")

    def wait_for(self, condition, timeout_s: float, what: str):
        return wait_for(condition, timeout_s, f"{what} (logs in {self.folder})")

    def holds(self, condition, seconds: float, what: str) -> None:
        """``condition()`` is true now and at every look for ``seconds`` (a late duplicate fails it)."""
        deadline = time.monotonic() + seconds
        while True:
            assert condition(), f"no longer true: {what} (logs in {self.folder})"
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()


@pytest.fixture
def registration(tmp_path):
    """Factory: ``registration("queued", broker_url)`` starts a variant; all stopped after the test.
    ``database_url=`` puts its data in that database instead of SQLite in the temp folder."""
    started = []

    def start(variant: str, broker_url: str = "", env: dict | None = None,
              database_url: str = "") -> Registration:
        running = Registration(tmp_path / f"{variant}-{len(started)}", variant, broker_url, env, database_url)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def registration_database_url(request):
    """Chapter 4 on each database in turn: "" (SQLite, the default), then a fresh PostgreSQL database."""
    return request.getfixturevalue("postgres_database_url") if request.param == "postgres" else ""


@pytest.fixture
def rendered_claims(tmp_path):
    """``rendered_claims(slug, figure_names)``: render the chapter's notebook from its smoke
    fixture (tests/fixtures/results/<slug>), check the named PNGs and claims.csv's columns, and
    return claims.csv's rows (every one from a smoke run, one repetition)."""
    from load import ROOT, figures
    from load.results import CLAIM_COLUMNS, read_claims

    def render(slug: str, names: list[str]) -> list[dict]:
        figures.render(slug, ROOT / "tests" / "fixtures" / "results" / slug, tmp_path)
        for name in names:
            assert (tmp_path / name).stat().st_size > 1000, name
        claims = read_claims(tmp_path / "claims.csv")
        assert list(claims[0]) == CLAIM_COLUMNS
        assert all(row["scenario"] and row["size"] == "smoke" and row["runs"] == "1" for row in claims)
        return claims
    return render


def post_json(url: str, body) -> tuple[int, dict]:
    """POST ``body`` (JSON-encoded, or bytes as they are); the status and the JSON answer, 4xx included."""
    import json
    import urllib.error
    import urllib.request
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as answer:
        return answer.code, json.load(answer)


@pytest.fixture
def post():
    """``post(url, body)``: the status and the JSON answer (sections 2 and 3)."""
    return post_json


@pytest.fixture
def processes(tmp_path):
    """``processes(name, argv, ready, env)`` starts a Service logging to ``tmp_path/<name>.log``;
    all stopped after the test."""
    started = []

    def start(name: str, argv: list, ready, env: dict) -> Service:
        started.append(Service(name, argv, log_path=tmp_path / f"{name}.log", ready=ready, env=env))
        return started[-1].start()
    yield start
    for service in reversed(started):
        service.stop()
