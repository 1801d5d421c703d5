"""The registration store on SQLite, the default (in-process, no sleeps): exactly-once sends and
one user per address when threads race, and a failed publish leaves nothing half-written.
The same races on PostgreSQL: tests/integration/test_message_queues_store_postgres.py."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from demos.message_queues.store import Database, DuplicateEmail, NewUser

RACERS = 16


@pytest.fixture
def database(tmp_path):
    return Database(f"sqlite:///{tmp_path / 'data' / 'registrations.db'}")


def race(function, n: int = RACERS) -> list:
    """``function(i)`` from ``n`` threads released at the same moment; their results in order."""
    start = threading.Barrier(n)

    def run(i):
        start.wait(timeout=10)
        return function(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_one_idempotency_key_is_sent_once_however_many_workers_race(database):
    firsts = race(lambda _: database.record_attempt("email", "ada@example.com", "email:1"))
    assert firsts.count(True) == 1
    assert database.audit() == {"users": 0, "attempts": {"email": RACERS}, "sends": {"email": 1}}


def test_different_keys_racing_are_each_sent_once(database):
    firsts = race(lambda i: database.record_attempt("email", f"user{i}@example.com", f"email:{i}"))
    assert firsts == [True] * RACERS
    assert database.audit() == {"users": 0, "attempts": {"email": RACERS}, "sends": {"email": RACERS}}


def test_one_address_registers_once_however_many_requests_race(database):
    def register(_):
        try:
            return database.add_user(NewUser("ada@example.com", "+15551234567"))
        except DuplicateEmail:
            return None

    ids = race(register)
    assert len([i for i in ids if i is not None]) == 1
    assert database.audit()["users"] == 1


def test_a_failure_before_commit_rolls_the_user_back(database):
    def refuse(user_id):
        raise ConnectionError("the broker refused the jobs")

    with pytest.raises(ConnectionError):
        database.add_user(NewUser("ada@example.com", "+15551234567"), before_commit=refuse)
    assert database.audit()["users"] == 0
    seen = []
    user_id = database.add_user(NewUser("ada@example.com", "+15551234567"), before_commit=seen.append)
    assert seen == [user_id] and database.audit()["users"] == 1   # the address was not taken



def test_a_duplicate_names_the_address(database):
    database.add_user(NewUser("ada@example.com", "+15551234567"))
    with pytest.raises(DuplicateEmail, match="ada@example.com"):
        database.add_user(NewUser("ada@example.com", "+15550000000"))


def test_audit_counts_attempts_and_sends_per_channel(database):
    assert database.audit() == {"users": 0, "attempts": {}, "sends": {}}
    user_id = database.add_user(NewUser("ada@example.com", "+15551234567"))
    assert database.record_attempt("email", "ada@example.com", f"email:{user_id}") is True
    assert database.record_attempt("email", "ada@example.com", f"email:{user_id}") is False
    assert database.record_attempt("sms", "+15551234567", f"sms:{user_id}") is True
    assert database.audit() == {"users": 1, "attempts": {"email": 2, "sms": 1}, "sends": {"email": 1, "sms": 1}}


def test_timeline_gives_each_user_its_send_times(database):
    before = time.time()
    first = database.add_user(NewUser("ada@example.com", "+15551234567"))
    second = database.add_user(NewUser("bob@example.com", "+15551234567"))
    database.record_attempt("sms", "+15551234567", f"sms:{first}")
    database.record_attempt("email", "bob@example.com", f"email:{second}")
    after = time.time()
    [(id1, created1, email1, sms1), (id2, created2, email2, sms2)] = database.timeline()
    assert (id1, id2) == (first, second)
    assert email1 is None and sms2 is None
    assert before <= created1 <= created2 <= email2 <= after and created1 <= sms1 <= after


def test_the_write_latency_is_slept_before_the_transaction(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'slow.db'}", write_latency_s=0.05)
    started = time.monotonic()
    database.add_user(NewUser("ada@example.com", "+15551234567"))
    assert time.monotonic() - started >= 0.05


def test_a_second_database_object_sees_the_same_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Database(url).add_user(NewUser("ada@example.com", "+15551234567"))
    assert Database(url).audit()["users"] == 1


def test_each_thread_keeps_one_connection(database):
    """One connection per thread, kept open (closing SQLite's last one would checkpoint the WAL)."""
    mine = database._connection()
    assert database._connection() is mine
    with ThreadPoolExecutor(max_workers=1) as pool:
        theirs = pool.submit(database._connection).result()
    assert theirs is not mine


def test_the_defaults_add_no_latency_and_a_busy_database_is_waited_for(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'fast.db'}")
    assert database.write_latency_s == 0.0
    db = database._connect()
    assert db.isolation_level is None        # autocommit: the store's own BEGIN IMMEDIATE is the only one
    assert db.execute("PRAGMA busy_timeout").fetchone() == (30000,)   # a writer waits its turn, up to 30 s
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize("version,refused", [((3, 34, 9), True), ((3, 35, 0), False), ((3, 45, 1), False)])
def test_sqlite_older_than_3_35_is_refused_with_the_reason(tmp_path, monkeypatch, version, refused):
    import sqlite3
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    url = f"sqlite:///{tmp_path / 'version.db'}"
    if refused:
        with pytest.raises(SystemExit, match="needs 3.35 or newer"):
            Database(url)
    else:
        assert Database(url).audit()["users"] == 0


def test_contact_is_the_committed_users_address_and_none_for_others(database):
    user_id = database.add_user(NewUser("ada@example.com", "+15551234567"))
    assert database.contact(user_id) == ("ada@example.com", "+15551234567")
    assert database.contact(user_id + 1) is None
    with pytest.raises(RuntimeError):
        database.add_user(NewUser("bob@example.com", "+15551234568"),
                          before_commit=lambda new_id: (_ for _ in ()).throw(RuntimeError("rolled back")))
    assert database.contact(user_id + 1) is None            # the rolled-back user has no address
