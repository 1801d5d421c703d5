"""The worker sends a job only to its user as committed (the embedded broker; no server needed).

Jobs are published inside the user's transaction, so a job may arrive before its user is committed:
it waits for the commit. A publish that outlived its 503 leaves a stray job: its user was rolled
back and never appears, or (SQLite reuses the id) the id now belongs to someone else. Sent, the
stray job would spend that user's idempotency key and their welcome e-mail would never go out.
"""
import time

from kombu import Connection

from demos.message_queues.broker import DEFAULT_EXCHANGE, connect, queues
from demos.message_queues.store import NewUser

STRAY_AFTER_S = 10.0   # the worker's


def publish(connection: Connection, prefix: str, channel: str, user_id: int, to: str, published_at: float) -> None:
    with connection.Producer() as producer:
        producer.publish({"channel": channel, "user_id": user_id, "to": to, "key": f"{channel}:{user_id}",
                          "published_at": published_at}, exchange=DEFAULT_EXCHANGE,
                         routing_key=queues(prefix)[channel].name, delivery_mode="persistent", serializer="json")


def test_a_job_waits_for_its_users_commit_and_a_stray_job_is_dropped(registration):
    running = registration("queued", env={"STEP_MS": "0"})
    worker = running.start_worker()
    prefix = running.env["QUEUE_PREFIX"]
    connection = connect(f"filesystem://{running.folder / 'data' / 'broker'}")
    database = running.database
    try:
        ada = database.add_user(NewUser("ada@example.com", "+15551234567"))
        # the id that SQLite gave to ada first went to a registration rolled back after its publish
        publish(connection, prefix, "email", ada, "eve@example.com", time.time() - 1)
        # a rolled-back user's id that nobody got, published long ago
        publish(connection, prefix, "sms", ada + 100, "+15550000000", time.time() - STRAY_AFTER_S - 1)
        # published before its user's commit: the worker must wait for it, not drop it
        publish(connection, prefix, "email", ada + 1, "bob@example.com", time.time())
        time.sleep(0.5)
        bob = database.add_user(NewUser("bob@example.com", "+15551234567"))
        assert bob == ada + 1
        publish(connection, prefix, "email", ada, "ada@example.com", time.time())   # ada's own job
        running.wait_for(lambda: database.audit()["sends"].get("email") == 2, 15, "ada's and bob's e-mails")
        running.wait_for(lambda: worker.log_path.read_text().count("dropping stray job") == 2, 15,
                         "both stray jobs dropped")
        running.holds(lambda: database.audit() == {"users": 2, "attempts": {"email": 2}, "sends": {"email": 2}},
                      0.5, "only ada's and bob's e-mails sent, to them")
        with database.transaction() as db:
            assert sorted(db.execute("SELECT recipient FROM sends")) == [("ada@example.com",), ("bob@example.com",)]
    finally:
        connection.release()
