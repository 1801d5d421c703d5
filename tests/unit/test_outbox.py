"""The outbox publishes exactly what was committed, in order, at least once (demos/outbox.py)."""
import threading

import pytest

from demos import outbox
from demos.message_queues.store import Database


@pytest.fixture
def database(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/outbox.db")
    with database.transaction() as db:
        outbox.create_table(db, database.dialect.id)
    return database


def test_only_committed_events_are_published_in_order(database):
    published = []
    with database.transaction() as db:
        first = outbox.add(db, "order.placed", {"n": 1})
    with pytest.raises(RuntimeError):
        with database.transaction() as db:
            outbox.add(db, "order.placed", {"n": 2})
            raise RuntimeError("the change failed: its event goes with it")
    with database.transaction() as db:
        third = outbox.add(db, "order.placed", {"n": 3})
    relay = outbox.Relay(database.transaction, lambda *event: published.append(event))
    assert relay.publish_pending() == 2
    assert published == [(first, "order.placed", {"n": 1}), (third, "order.placed", {"n": 3})]
    assert relay.publish_pending() == 0
    with database.transaction() as db:
        assert outbox.pending(db) == 0


def test_a_refused_publish_keeps_the_event_and_the_order(database):
    with database.transaction() as db:
        ids = [outbox.add(db, "t", {"n": n}) for n in range(3)]
    published, refuse = [], {ids[1]}

    def publish(event_id, topic, payload):
        if event_id in refuse:
            raise ConnectionError("broker away")
        published.append(event_id)

    relay = outbox.Relay(database.transaction, publish)
    with pytest.raises(ConnectionError):
        relay.publish_pending()
    assert published == ids[:1]
    with database.transaction() as db:
        assert outbox.pending(db) == 2
    refuse.clear()
    assert relay.publish_pending() == 2
    assert published == ids


def test_a_relay_dying_after_the_publish_publishes_again_with_the_same_id(database):
    with database.transaction() as db:
        event_id = outbox.add(db, "t", {})
    seen = []

    def crash_after_publish(event_id, topic, payload):
        seen.append(event_id)
        raise SystemExit("killed between the publish and the mark")

    with pytest.raises(SystemExit):
        outbox.Relay(database.transaction, crash_after_publish).publish_pending()
    outbox.Relay(database.transaction, lambda *event: seen.append(event[0])).publish_pending()
    assert seen == [event_id, event_id]   # at least once: consumers dedupe by event_id


def test_run_drains_a_backlog_larger_than_a_batch_and_survives_errors(database):
    with database.transaction() as db:
        for n in range(outbox.BATCH * 2 + 5):
            outbox.add(db, "t", {"n": n})
    published, errors, failures = [], [], [1]

    def publish(event_id, topic, payload):
        if failures:
            failures.pop()
            raise ConnectionError("once")
        published.append(payload["n"])

    stop = threading.Event()
    relay = outbox.Relay(database.transaction, publish, poll_interval_s=0.01)
    thread = threading.Thread(target=relay.run, args=(stop, errors.append))
    thread.start()
    try:
        for _ in range(500):
            if len(published) == outbox.BATCH * 2 + 5:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(5)
    assert published == list(range(outbox.BATCH * 2 + 5))
    assert len(errors) == 1
