"""Fixtures for every test: real servers when a test asks for one, and no writes to $HOME."""
import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from load.harness import Service, http_ready
from load.servers import ServerMissing, create_database, drop_database, free_port, required, running

# Matplotlib, IPython and Jupyter (the notebook tests) write caches and kernel files here, not to $HOME.
_SCRATCH = tempfile.mkdtemp(prefix="tests-home-")
for _variable in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
    os.environ.setdefault(_variable, os.path.join(_SCRATCH, _variable.lower()))


# The servers a test uses come from its fixtures, never from the caller's shell (`make servers`
# prints these exports): a service or a `python -m load` the tests start inherits this environment.
for _variable in ("BROKER_URL", "DATABASE_URL", "REDIS_URL"):
    os.environ.pop(_variable, None)


def pytest_unconfigure(config):
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@contextlib.contextmanager
def started(name: str, workdir: str | None = None, **options):
    """``running()``, but a server that is not installed skips the test (REQUIRE_SERVERS=1: fails it)."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running(name, workdir, **options))
        except ServerMissing as missing:
            hint = str(missing)
        else:
            yield server
            return
    if required():                  # REQUIRE_SERVERS=1 (or true, yes), as in CI
        pytest.fail(hint, pytrace=False)
    pytest.skip(hint)


@pytest.fixture(scope="session")
def start_server():
    """``with start_server("redis") as server:`` for a test that wants its own server."""
    return started


@pytest.fixture(scope="session")
def redis_url():
    with started("redis") as server:
        yield server.url


@pytest.fixture(scope="session")
def rabbitmq_url():
    with started("rabbitmq") as server:
        yield server.url


@pytest.fixture(scope="session")
def postgres_url():
    """The session's PostgreSQL server (its ``registrations`` database)."""
    with started("postgres") as server:
        yield server.url


@pytest.fixture
def postgres_database_url(postgres_url):
    """A new, empty database on the session's PostgreSQL server, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_url, name)
    yield url
    drop_database(postgres_url, name)


class RealtimeServer:
    """Chapter 1's server (demos.realtime_delivery.server) as a real process. ``kill()`` is SIGKILL;
    ``start()`` again brings it back on the same ports and the same data. ``argv``: more options
    (``["--processes", "2"]``)."""

    def __init__(self, folder: Path, env: dict, argv: tuple = ()):
        # BROKER_URL or DATABASE_URL from the caller's shell (`make servers` prints them) must not change the test
        self.env = {"DATA_DIR": str(folder / "data"), "BROKER_URL": "", "DATABASE_URL": "", **env}
        self.folder, self.argv = folder, list(argv)
        self.port, self.ws_port = free_port(), free_port()
        self.url, self.ws_url = f"http://127.0.0.1:{self.port}", f"ws://127.0.0.1:{self.ws_port}"
        self.service: Service | None = None
        self.starts = 0

    def start(self) -> "RealtimeServer":
        self.starts += 1
        self.service = Service(f"realtime-{self.starts}",
                               [sys.executable, "-m", "demos.realtime_delivery.server",
                                "--port", str(self.port), "--ws-port", str(self.ws_port), *self.argv],
                               log_path=self.folder / f"server-{self.starts}.log",
                               ready=http_ready(f"{self.url}/health"), env=self.env)
        self.service.start()
        return self

    def kill(self) -> None:
        self.service.kill()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


@pytest.fixture
def realtime(tmp_path):
    """Factory: ``realtime(env={"WINDOW_LENGTH": "20"}, argv=["--processes", "2"])`` starts the
    chapter 1 server; stopped after the test."""
    started = []

    def start(env: dict | None = None, argv: tuple = ()) -> RealtimeServer:
        server = RealtimeServer(tmp_path / f"realtime-{len(started)}", env or {}, argv)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


class RecordingJobs:
    """Chapter 4's broker stand-in: records what would have been published, or refuses."""
    def __init__(self, fail=False):
        self.fail, self.published = fail, []

    def publish(self, user_id, email, phone):
        if self.fail:
            from demos.message_queues.broker import BrokerUnavailable
            raise BrokerUnavailable("broker not reachable at amqp://127.0.0.1:1//")
        self.published.append((user_id, email, phone))


@pytest.fixture
def recording_jobs():
    """The RecordingJobs class: ``recording_jobs(fail=True)`` refuses every publish."""
    return RecordingJobs
