"""The truth: every message is stored (committed) before it is routed, with its sequence number.

Two kinds of stream, each numbered 1, 2, 3... on its own:
- ``d:<device>``: the messages to one device (a push to it, or to a list naming it);
- ``t:<topic>``: a topic's messages, stored once whatever the number of subscribers, so one
  identical frame serves every subscriber.

Bounded per stream (``bound`` messages, ``OFFLINE_BOUND``, 100 by default) and by age (``ttl_s``,
``OFFLINE_TTL_S``, an hour): a device offline for longer than either is told with a gap marker,
never a silent hole (``Batch.gap``). Acks are cumulative per device and stream ("I have everything
up to N") and only ever move forward; what a reconnecting device still needs is everything after
the larger of its stored ack and the number it says it has.

SQLite in WAL mode by default: one file shared by the API and every gateway process on the machine
(readers never wait for the writer). PostgreSQL through ``DATABASE_URL=postgresql://...`` shares it
across machines: the same SQL (chapter 4's ``Database`` translates the placeholders), row locks
taken in sorted order so two writers never deadlock. The embedded routing table lives in the same
database (``routing``). One connection per thread. Tables are prefixed ``push_`` so one PostgreSQL
database can hold every chapter.
"""
import os
import time
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Optional

from demos.message_queues.store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS push_streams (stream TEXT PRIMARY KEY, last_seq BIGINT NOT NULL){without_rowid};
CREATE TABLE IF NOT EXISTS push_messages (stream TEXT NOT NULL, seq BIGINT NOT NULL, ts DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL, flags INTEGER NOT NULL, PRIMARY KEY (stream, seq)){without_rowid};
CREATE TABLE IF NOT EXISTS push_acks (device TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (device, stream)){without_rowid};
CREATE TABLE IF NOT EXISTS push_devices (device TEXT PRIMARY KEY, topics TEXT NOT NULL){without_rowid};
CREATE TABLE IF NOT EXISTS push_topics (topic TEXT PRIMARY KEY){without_rowid};
CREATE TABLE IF NOT EXISTS push_routes (device TEXT PRIMARY KEY, gateway TEXT NOT NULL){without_rowid};
CREATE TABLE IF NOT EXISTS push_gateways (gateway TEXT PRIMARY KEY, seen DOUBLE PRECISION NOT NULL){without_rowid}
"""
# (DOUBLE PRECISION, not REAL: PostgreSQL's REAL rounds today's epoch seconds to about two minutes.)
DEFAULT_BOUND = 100
URGENT, NOTIFY = 1, 2   # a message's flags: deliver at once (else at the next heartbeat); notify-then-pull
DEFAULT_TTL_S = 3600.0


class Message(NamedTuple):
    stream: str
    seq: int
    ts: float
    body: str
    flags: int = URGENT   # URGENT | NOTIFY bits


@dataclass
class Batch:
    """What a stream holds after a number: ``messages`` in order; ``gap`` when some of what came
    after ``after`` is no longer kept (``first_seq`` is then the first one missing, ``missing_to`` the last)."""
    messages: list
    last_seq: int
    gap: Optional[tuple] = None


class Store(Database):
    def __init__(self, url: str, bound: int = DEFAULT_BOUND, ttl_s: float = DEFAULT_TTL_S):
        super().__init__(url, schema=SCHEMA)
        self.bound, self.ttl_s = bound, ttl_s

    @classmethod
    def from_env(cls, data_dir: str) -> "Store":
        """``DATABASE_URL`` (SQLite or PostgreSQL), else ``push.db`` in ``data_dir``."""
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{os.path.join(data_dir, 'push.db')}"
        return cls(url, int(os.environ.get("OFFLINE_BOUND", DEFAULT_BOUND)),
                   float(os.environ.get("OFFLINE_TTL_S", DEFAULT_TTL_S)))

    def select_in(self, sql: str, keys: list) -> list:
        """``sql`` ending in ``IN ({})`` run for ``keys`` in chunks of 500 (the placeholders' limit)."""
        db, rows = self.autocommit(), []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows.extend(db.execute(sql.format(",".join("?" * len(chunk))), chunk))
        return rows

    # ---- devices and topics (the API's registry)

    def register(self, devices: list[str], topics: Iterable[str]) -> None:
        topics = sorted(set(topics))
        with self.transaction() as db:   # rows in sorted order: two registrations never deadlock
            db.executemany("INSERT INTO push_devices VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET topics = excluded.topics",
                           [(device, ",".join(topics)) for device in sorted(set(devices))])
            db.executemany("INSERT INTO push_topics VALUES (?) ON CONFLICT (topic) DO NOTHING", [(topic,) for topic in topics])

    def unknown_devices(self, devices: list[str]) -> list[str]:
        known = {row[0] for row in self.select_in("SELECT device FROM push_devices WHERE device IN ({})", devices)}
        return [device for device in devices if device not in known]

    def topic_known(self, topic: str) -> bool:
        return self.autocommit().execute("SELECT 1 FROM push_topics WHERE topic = ?", (topic,)).fetchone() is not None

    # ---- messages

    def append(self, streams: list[str], body: str, flags: int = URGENT, ts: Optional[float] = None) -> list[Message]:
        """Store one message in each stream (one transaction); each gets its stream's next number.
        The streams are numbered in sorted order (two appends lock their rows in the same order,
        so they never deadlock) and returned in the caller's."""
        ts = time.time() if ts is None else ts
        stored = {}
        with self.transaction() as db:
            for stream in sorted(set(streams)):
                seq = db.execute("INSERT INTO push_streams VALUES (?, 1) ON CONFLICT (stream) DO UPDATE "
                                 "SET last_seq = push_streams.last_seq + 1 RETURNING last_seq", (stream,)).fetchone()[0]
                db.execute("INSERT INTO push_messages VALUES (?, ?, ?, ?, ?)", (stream, seq, ts, body, flags))
                if seq > self.bound:
                    db.execute("DELETE FROM push_messages WHERE stream = ? AND seq <= ?", (stream, seq - self.bound))
                stored[stream] = Message(stream, seq, ts, body, flags)
        return [stored[stream] for stream in streams]

    def last_seq(self, stream: str) -> int:
        row = self.autocommit().execute("SELECT last_seq FROM push_streams WHERE stream = ?", (stream,)).fetchone()
        return row[0] if row else 0

    def last_seqs(self, streams: list[str]) -> dict:
        """``{stream: last_seq}`` of those that have messages."""
        return dict(self.select_in("SELECT stream, last_seq FROM push_streams WHERE stream IN ({})", streams))

    def after(self, stream: str, after: int, limit: int = 1000) -> Batch:
        """The messages after ``after`` still kept (bound and TTL), at most ``limit``; a gap if some
        of them are gone."""
        db = self.autocommit()
        last = self.last_seq(stream)
        rows = db.execute("SELECT seq, ts, body, flags FROM push_messages WHERE stream = ? AND seq > ? AND ts >= ? "
                          "ORDER BY seq LIMIT ?", (stream, after, time.time() - self.ttl_s, limit)).fetchall()
        messages = [Message(stream, *row) for row in rows]
        first_kept = messages[0].seq if messages else last + 1
        gap = (after + 1, first_kept - 1) if first_kept > after + 1 and last > after else None
        return Batch(messages, last, gap)

    def prune(self) -> int:
        with self.transaction() as db:
            return db.execute("DELETE FROM push_messages WHERE ts < ?", (time.time() - self.ttl_s,)).rowcount

    # ---- cumulative acks

    def ack(self, acks: Iterable[tuple]) -> None:
        """``(device, stream, seq)`` each: the device has everything of ``stream`` up to ``seq``."""
        rows = sorted(acks)   # locked in sorted order: two gateways acking one device never deadlock
        if not rows:
            return
        with self.transaction() as db:
            db.executemany("INSERT INTO push_acks VALUES (?, ?, ?) ON CONFLICT (device, stream) DO UPDATE "
                           "SET seq = CASE WHEN excluded.seq > push_acks.seq THEN excluded.seq ELSE push_acks.seq END",
                           rows)

    def acked(self, device: str) -> dict:
        return dict(self.autocommit().execute("SELECT stream, seq FROM push_acks WHERE device = ?", (device,)))
