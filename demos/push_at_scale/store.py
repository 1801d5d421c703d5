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

SQLite in WAL mode, one file shared by the API and every gateway process on the machine (readers
never wait for the writer). The embedded routing table lives in the same file (``routing``). One
connection per thread.
"""
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple, Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (stream TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (stream TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
    body TEXT NOT NULL, flags INTEGER NOT NULL, PRIMARY KEY (stream, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS acks (device TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (device, stream)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, topics TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS routes (device TEXT PRIMARY KEY, gateway TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gateways (gateway TEXT PRIMARY KEY, seen REAL NOT NULL) WITHOUT ROWID
"""
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


@dataclass
class Store:
    url: str
    bound: int = DEFAULT_BOUND
    ttl_s: float = DEFAULT_TTL_S
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def __post_init__(self):
        path = self.path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        db = self.db()
        db.execute("PRAGMA journal_mode=WAL")
        with self.transaction() as db:
            for statement in SCHEMA.split(";"):
                db.execute(statement)

    @classmethod
    def from_env(cls, data_dir: str) -> "Store":
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{os.path.join(data_dir, 'push.db')}"
        if not url.startswith("sqlite:///"):
            raise SystemExit("error: this chapter's store is SQLite only (DATABASE_URL=sqlite:///path); "
                             "unset DATABASE_URL for the default")
        return cls(url, int(os.environ.get("OFFLINE_BOUND", DEFAULT_BOUND)),
                   float(os.environ.get("OFFLINE_TTL_S", DEFAULT_TTL_S)))

    @property
    def path(self) -> str:
        return self.url[len("sqlite:///"):]

    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                                  check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")   # with WAL: durable across a process crash
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---- devices and topics (the API's registry)

    def register(self, devices: list[str], topics: Iterable[str]) -> None:
        topics = sorted(set(topics))
        with self.transaction() as db:
            db.executemany("INSERT INTO devices VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET topics = excluded.topics",
                           [(device, ",".join(topics)) for device in devices])
            db.executemany("INSERT OR IGNORE INTO topics VALUES (?)", [(topic,) for topic in topics])

    def unknown_devices(self, devices: list[str]) -> list[str]:
        db = self.db()
        known = set()
        for start in range(0, len(devices), 500):
            chunk = devices[start:start + 500]
            known.update(row[0] for row in db.execute(
                f"SELECT device FROM devices WHERE device IN ({','.join('?' * len(chunk))})", chunk))
        return [device for device in devices if device not in known]

    def topic_known(self, topic: str) -> bool:
        return self.db().execute("SELECT 1 FROM topics WHERE topic = ?", (topic,)).fetchone() is not None

    # ---- messages

    def append(self, streams: list[str], body: str, flags: int = URGENT, ts: Optional[float] = None) -> list[Message]:
        """Store one message in each stream (one transaction); each gets its stream's next number."""
        ts = time.time() if ts is None else ts
        stored = []
        with self.transaction() as db:
            for stream in streams:
                seq = db.execute("INSERT INTO streams VALUES (?, 1) ON CONFLICT(stream) DO UPDATE "
                                 "SET last_seq = last_seq + 1 RETURNING last_seq", (stream,)).fetchone()[0]
                db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (stream, seq, ts, body, flags))
                if seq > self.bound:
                    db.execute("DELETE FROM messages WHERE stream = ? AND seq <= ?", (stream, seq - self.bound))
                stored.append(Message(stream, seq, ts, body, flags))
        return stored

    def last_seq(self, stream: str) -> int:
        row = self.db().execute("SELECT last_seq FROM streams WHERE stream = ?", (stream,)).fetchone()
        return row[0] if row else 0

    def after(self, stream: str, after: int, limit: int = 1000) -> Batch:
        """The messages after ``after`` still kept (bound and TTL), at most ``limit``; a gap if some
        of them are gone."""
        db = self.db()
        last = self.last_seq(stream)
        rows = db.execute("SELECT seq, ts, body, flags FROM messages WHERE stream = ? AND seq > ? AND ts >= ? "
                          "ORDER BY seq LIMIT ?", (stream, after, time.time() - self.ttl_s, limit)).fetchall()
        messages = [Message(stream, *row) for row in rows]
        first_kept = messages[0].seq if messages else last + 1
        gap = (after + 1, first_kept - 1) if first_kept > after + 1 and last > after else None
        return Batch(messages, last, gap)

    def prune(self) -> int:
        with self.transaction() as db:
            return db.execute("DELETE FROM messages WHERE ts < ?", (time.time() - self.ttl_s,)).rowcount

    # ---- cumulative acks

    def ack(self, acks: Iterable[tuple]) -> None:
        """``(device, stream, seq)`` each: the device has everything of ``stream`` up to ``seq``."""
        rows = list(acks)
        if not rows:
            return
        with self.transaction() as db:
            db.executemany("INSERT INTO acks VALUES (?, ?, ?) ON CONFLICT(device, stream) DO UPDATE "
                           "SET seq = max(seq, excluded.seq)", rows)

    def acked(self, device: str) -> dict:
        return dict(self.db().execute("SELECT stream, seq FROM acks WHERE device = ?", (device,)))
