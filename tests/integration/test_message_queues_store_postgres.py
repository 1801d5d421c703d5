"""The registration store on a real PostgreSQL (in-process, no sleeps): the same guarantees as on
SQLite, where PostgreSQL's row locks, not one database lock, decide every race."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from demos.message_queues import parallel, queued, serial
from demos.message_queues.app import Services, create_app
from demos.message_queues.providers import Provider
from demos.message_queues.store import Database, NewUser

pytestmark = pytest.mark.servers

GOOD = {"email": "Ada@Example.com", "phone": "+15551234567"}
VARIANTS = {"serial": serial, "parallel": parallel, "queued": queued}


def client_for(variant: str, database: Database, jobs):
    services = Services(database, Provider("email", 0, database), Provider("sms", 0, database), jobs)
    return create_app(VARIANTS[variant].register, services).test_client()


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_registered_email_gets_409_even_under_concurrent_attempts(postgres_database_url, variant,
                                                                    recording_jobs):
    database = Database(postgres_database_url)
    app = client_for(variant, database, recording_jobs()).application
    start = threading.Barrier(16)

    def attempt(_):
        client = app.test_client()
        start.wait(timeout=10)                                         # all 16 at once
        return client.post("/register", json=GOOD).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = sorted(pool.map(attempt, range(16)))
    assert statuses == [201] + [409] * 15
    assert database.audit()["users"] == 1
    assert app.test_client().post("/register", json={**GOOD, "email": "ADA@example.com"}).status_code == 409


def test_queued_rolls_the_user_back_when_the_broker_refuses(postgres_database_url, recording_jobs):
    database = Database(postgres_database_url)
    jobs = recording_jobs(fail=True)
    client = client_for("queued", database, jobs)
    response = client.post("/register", json=GOOD)
    assert response.status_code == 503
    assert database.audit()["users"] == 0
    jobs.fail = False
    response = client.post("/register", json=GOOD)
    assert response.status_code == 201                         # the address was not taken
    assert jobs.published == [(response.get_json()["id"], "ada@example.com", "+15551234567")]


def test_one_idempotency_key_is_sent_once_however_many_workers_race(postgres_database_url):
    database = Database(postgres_database_url)
    start = threading.Barrier(16)

    def send(_):
        start.wait(timeout=10)
        return database.record_attempt("email", "ada@example.com", "email:1")

    with ThreadPoolExecutor(max_workers=16) as pool:
        firsts = list(pool.map(send, range(16)))
    assert firsts.count(True) == 1
    assert database.audit() == {"users": 0, "attempts": {"email": 16}, "sends": {"email": 1}}


def test_processes_starting_together_create_the_schema_once(postgres_database_url):
    """The web service and its workers all create the tables at start; none of them may fail."""
    start, errors = threading.Barrier(8), []

    def open_database():
        start.wait(timeout=10)
        try:
            Database(postgres_database_url)
        except Exception as error:                             # e.g. UniqueViolation on pg_type
            errors.append(error)

    threads = [threading.Thread(target=open_database) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []


def test_timeline_keeps_sub_second_times(postgres_database_url):
    database = Database(postgres_database_url)
    before = time.time()
    user_id = database.add_user(NewUser("ada@example.com", "+15551234567"))
    database.record_attempt("email", "ada@example.com", f"email:{user_id}")
    after = time.time()
    [(timeline_id, created_at, email_sent_at, sms_sent_at)] = database.timeline()
    assert timeline_id == user_id and sms_sent_at is None
    assert before <= created_at <= email_sent_at <= after      # to the microsecond, not the minute


def test_a_connection_the_server_dropped_is_replaced(postgres_database_url):
    database = Database(postgres_database_url)
    assert database.audit()["users"] == 0
    with psycopg.connect(postgres_database_url, autocommit=True) as admin:   # say, a server restart
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(psycopg.OperationalError):
        database.audit()                                       # the request in flight fails...
    assert database.audit()["users"] == 0                      # ...and the next one reconnects
