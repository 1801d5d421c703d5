"""The transactional outbox: an event written in the same transaction as the change it announces,
then published by a relay. Used by chapter 4's decoupling section and chapter 5's events wiring.

Publishing to a broker inside a database transaction cannot be atomic: the broker may take the
event and the commit fail (an event for a change that never happened), or the commit succeed and the
publish fail (a change nobody hears of). The outbox makes the event part of the change:

    with database.transaction() as db:                 # demos.message_queues.store.Database
        order_id = ...insert the order...
        outbox.add(db, "order.placed", {"order_id": order_id, "product": "apple", "quantity": 2})

    relay = outbox.Relay(database.transaction, publish)   # publish(event_id, topic, payload)
    relay.run(stop)                                        # or relay.publish_pending() once

The relay publishes rows in the order they were written and marks each published after the broker
took it. A relay killed between the two publishes that row again when it restarts: delivery is at
least once, so every consumer makes a repeat harmless by the event's ``event_id`` (a UUID written
with the row, the same in every copy).

``db`` is any connection whose ``execute(sql, params)`` takes ``?`` placeholders, as the store's
``Connection`` does on SQLite and PostgreSQL.
"""
import json
import threading
import time
import uuid
from typing import Callable, ContextManager

# {id} is the dialect's auto-numbered primary key (demos.message_queues.store.DIALECTS)
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id {id},
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    published_at DOUBLE PRECISION
)
"""
BATCH = 100

Publish = Callable[[str, str, dict], None]   # (event_id, topic, payload); raises when not taken


def create_table(db, primary_key: str) -> None:
    db.execute(SCHEMA.format(id=primary_key))
    db.execute("CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (published_at, id)")


def add(db, topic: str, payload: dict) -> str:
    """Write an event inside the caller's transaction; it is published only if that transaction
    commits. Returns the event's id."""
    event_id = str(uuid.uuid4())
    db.execute("INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?)",
               (event_id, topic, json.dumps(payload), time.time()))
    return event_id


def pending(db) -> int:
    """Events written and not yet published."""
    return db.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]


class Relay:
    """Publishes committed outbox rows in order; ``transaction`` opens one database transaction."""

    def __init__(self, transaction: Callable[[], ContextManager], publish: Publish,
                 poll_interval_s: float = 0.05):
        self.transaction = transaction
        self.publish = publish
        self.poll_interval_s = poll_interval_s
        self.published = 0

    def publish_pending(self) -> int:
        """Publish up to BATCH unpublished events, oldest first; stop at the first the broker refuses
        (it stays unpublished, so order is kept). Returns how many were published."""
        with self.transaction() as db:
            rows = db.execute("SELECT id, event_id, topic, payload FROM outbox WHERE published_at IS NULL"
                              " ORDER BY id LIMIT ?", (BATCH,)).fetchall()
        done = 0
        for row_id, event_id, topic, payload in rows:
            self.publish(event_id, topic, json.loads(payload))   # a refusal raises: retried next round
            with self.transaction() as db:
                db.execute("UPDATE outbox SET published_at = ? WHERE id = ?", (time.time(), row_id))
            done += 1
        self.published += done
        return done

    def run(self, stop: threading.Event, on_error: Callable[[Exception], None] = lambda error: None) -> None:
        """Publish until ``stop`` is set: at once while there is a backlog, else every poll interval.
        A broker or database error is handed to ``on_error`` and retried after a pause."""
        while not stop.is_set():
            try:
                if self.publish_pending() == BATCH:
                    continue
            except Exception as error:   # the broker or the database is away: keep the rows, retry
                on_error(error)
                stop.wait(max(self.poll_interval_s, 0.5))
                continue
            stop.wait(self.poll_interval_s)
