"""Fixtures for every test: real servers when a test asks for one, and no writes to $HOME."""
import contextlib
import os
import shutil
import tempfile
import uuid

import pytest

from load.servers import ServerMissing, create_database, drop_database, running

# Matplotlib, IPython and Jupyter (the notebook tests) write caches and kernel files here, not to $HOME.
_SCRATCH = tempfile.mkdtemp(prefix="tests-home-")
for _variable in ("MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
    os.environ.setdefault(_variable, os.path.join(_SCRATCH, _variable.lower()))


def pytest_unconfigure(config):
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@contextlib.contextmanager
def started(name: str, workdir: str | None = None):
    """``running()``, but a server that is not installed skips the test (REQUIRE_SERVERS=1: fails it)."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running(name, workdir))
        except ServerMissing as missing:
            hint = str(missing)
        else:
            yield server
            return
    if os.environ.get("REQUIRE_SERVERS") == "1":
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
