"""DATABASE_URL: what the store accepts, and what it says when it cannot connect (no server needed)."""
import pytest

from demos.message_queues.store import Database, redacted
from load.servers import free_port


def test_an_unreachable_postgresql_says_how_to_start_one():
    url = f"postgresql://demo:s3cret@127.0.0.1:{free_port()}/registrations"
    with pytest.raises(SystemExit) as stopped:
        Database(url)
    message = str(stopped.value)
    assert "PostgreSQL not reachable at postgresql://demo:***@127.0.0.1:" in message
    assert "python -m load.servers postgres" in message and "unset DATABASE_URL" in message
    assert "s3cret" not in message


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1/db", "sqlite://relative.db", "registrations.db"])
def test_an_unsupported_url_names_the_ones_that_work(url):
    with pytest.raises(SystemExit, match="sqlite:///.*postgresql://"):
        Database(url)


def test_redacted_hides_only_the_password():
    assert redacted("postgres://ada:pw@db:5432/x?sslmode=require") == "postgres://ada:***@db:5432/x?sslmode=require"
    assert redacted("postgresql://ada@db/x") == "postgresql://ada@db/x"


@pytest.mark.parametrize("url", ["postgresql://ada@db/x", "postgres://ada@db/x", "postgresql+psycopg://ada@db/x"])
def test_both_postgresql_schemes_are_postgresql(url):
    from demos.message_queues.store import dialect_of
    expected = "postgresql" if url.split(":")[0] in ("postgresql", "postgres") else None
    if expected:
        assert dialect_of(url) == expected
    else:
        with pytest.raises(SystemExit, match="not supported"):
            dialect_of(url)
