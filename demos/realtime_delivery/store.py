"""The message pool: every message of a conversation, numbered, kept for a window.

The article parks messages that arrive between two polls in a per-user pool so that the next poll
finds them. Here the pool is per conversation and every message carries a sequence number, so one
pool serves every reader: a client says "everything after N" and gets exactly what it lacks.

- A conversation exists explicitly (``create``); anything else about an unknown one raises
  ``UnknownConversation``.
- ``append`` assigns the next sequence number inside one ``BEGIN IMMEDIATE`` transaction and
  commits before returning, so a number is given once, in commit order, even with several
  processes writing. The number comes from a counter on the conversation row rather than from
  ``max(seq) + 1`` over the messages: the window may have pruned every message, and a number must
  never be handed out twice.
- The window: the last ``window_length`` messages of a conversation (pruned on append) that are at
  most ``window_age_s`` old (``prune``, which the server runs periodically). Pruning only ever
  removes the oldest messages, so what is stored is always one unbroken run of numbers.
- A send may carry the client's id for it (``client_id``, the ``id`` field on every transport):
  one message per conversation, sender and id (the ``sends`` table's primary key), so a resend
  after a lost answer is not stored again and gets the original number (``Message.repeated``).
  An id is remembered as long as its message is in the window.
- ``read_after(N)`` returns the messages after N; if some of them were pruned it says so
  (``gap=True``, ``first_seq`` = the first one it still has) instead of silently skipping them.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed message survives the process being
killed (not a power cut; ``PRAGMA synchronous=FULL`` would be needed for that). One connection per
``Store``, guarded by a lock (under gevent the patched lock is a gevent lock).
"""
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0,   -- the last number handed out
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    conversation TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at REAL NOT NULL,
    client_ts REAL,
    PRIMARY KEY (conversation, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (sent_at);
CREATE TABLE IF NOT EXISTS sends (      -- the client's idempotency key of each message that had one
    conversation TEXT NOT NULL,
    sender TEXT NOT NULL,
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (conversation, sender, client_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sends_by_seq ON sends (conversation, seq);
CREATE INDEX IF NOT EXISTS sends_by_age ON sends (sent_at);
"""


class UnknownConversation(LookupError):
    """No conversation has this id."""


class AfterBeyondLast(ValueError):
    """The client claims to have messages that were never sent."""

    def __init__(self, after: int, last_seq: int):
        super().__init__(f"after={after} is beyond the conversation's last message ({last_seq})")
        self.after, self.last_seq = after, last_seq


@dataclass(frozen=True)
class Message:
    seq: int
    sender: str
    body: str
    sent_at: float
    client_ts: Optional[float] = None
    repeated: bool = field(default=False, compare=False)   # a resend: stored before under this number

    def as_dict(self) -> dict:
        return {"seq": self.seq, "sender": self.sender, "body": self.body,
                "sent_at": self.sent_at, "client_ts": self.client_ts}

    @cached_property
    def json(self) -> str:
        """Serialized once, however many clients it goes to."""
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Batch:
    """The answer to "everything after N"."""
    messages: list
    last_seq: int                     # the conversation's last number when read
    gap: bool = False                 # True: messages after N were pruned before this client read them
    first_seq: Optional[int] = None   # with a gap: the first number still kept (= last_seq + 1 if none)

    def as_dict(self) -> dict:
        return {"messages": [m.as_dict() for m in self.messages], "last_seq": self.last_seq,
                "gap": self.gap, "first_seq": self.first_seq}

    @property
    def json(self) -> str:
        """The polling transports' answer, built from each message's ready-made JSON."""
        return ('{"messages":[' + ",".join(message.json for message in self.messages) + "]"
                + f',"last_seq":{self.last_seq},"gap":{json.dumps(self.gap)},"first_seq":{json.dumps(self.first_seq)}}}')


def sqlite_path(database_url: str) -> str:
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        raise SystemExit(f"DATABASE_URL={database_url!r} is not supported: this demo speaks SQLite, "
                         f"e.g. sqlite:///var/realtime_delivery/messages.db (or unset DATABASE_URL)")
    return database_url[len(prefix):]


class Store:
    def __init__(self, database_url: str, window_length: int = 1000, window_age_s: float = 3600.0):
        if window_length < 1 or window_age_s <= 0:
            raise ValueError("the window must hold at least one message for a positive time")
        self.window_length, self.window_age_s = window_length, window_age_s
        path = sqlite_path(database_url)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    @contextmanager
    def _transaction(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def create(self, conversation: str, now: Optional[float] = None) -> bool:
        """Create the conversation; False if it existed already."""
        with self._transaction(immediate=True) as db:
            cursor = db.execute("INSERT OR IGNORE INTO conversations (id, created_at) VALUES (?, ?)",
                                (conversation, time.time() if now is None else now))
            return cursor.rowcount == 1

    def exists(self, conversation: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation,)).fetchone() is not None

    def last_seq(self, conversation: str) -> Optional[int]:
        """The last number handed out in the conversation (0 before its first message); None if
        there is no such conversation."""
        with self.lock:
            row = self.db.execute("SELECT last_seq FROM conversations WHERE id = ?", (conversation,)).fetchone()
        return None if row is None else row[0]

    def last_seqs(self, conversations: list) -> dict:
        """``last_seq`` of many conversations in a few queries: ``{id: last_seq}``, unknown ones left out."""
        found: dict = {}
        with self.lock:
            for start in range(0, len(conversations), 500):   # SQLite's limit on parameters is higher
                chunk = conversations[start:start + 500]
                found.update(self.db.execute("SELECT id, last_seq FROM conversations WHERE id IN"
                                             f" ({','.join('?' * len(chunk))})", chunk))
        return found

    def append(self, conversation: str, sender: str, body: str, client_ts: Optional[float] = None,
               now: Optional[float] = None, client_id: Optional[str] = None) -> Message:
        """Store a message under the conversation's next number; committed when this returns.
        With a ``client_id`` this sender used before in this conversation, nothing is stored: the
        original message comes back, ``repeated=True``."""
        sent_at = time.time() if now is None else now
        with self._transaction(immediate=True) as db:
            row = db.execute("SELECT last_seq FROM conversations WHERE id = ?", (conversation,)).fetchone()
            if row is None:
                raise UnknownConversation(conversation)
            if client_id is not None:
                original = self._sent_before(db, conversation, sender, client_id)
                if original is not None:
                    return original
            seq = row[0] + 1
            db.execute("UPDATE conversations SET last_seq = ? WHERE id = ?", (seq, conversation))
            db.execute("INSERT INTO messages (conversation, seq, sender, body, sent_at, client_ts)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (conversation, seq, sender, body, sent_at, client_ts))
            if client_id is not None:
                db.execute("INSERT INTO sends (conversation, sender, client_id, seq, sent_at) VALUES (?, ?, ?, ?, ?)",
                           (conversation, sender, client_id, seq, sent_at))
            for table in ("messages", "sends"):
                db.execute(f"DELETE FROM {table} WHERE conversation = ? AND seq <= ?",
                           (conversation, seq - self.window_length))
        return Message(seq, sender, body, sent_at, client_ts)

    @staticmethod
    def _sent_before(db: sqlite3.Connection, conversation: str, sender: str, client_id: str) -> Optional[Message]:
        """The message this sender stored under ``client_id``, ``repeated=True``; None if none."""
        row = db.execute("SELECT m.seq, m.sender, m.body, m.sent_at, m.client_ts FROM sends s JOIN messages m"
                         " ON m.conversation = s.conversation AND m.seq = s.seq"
                         " WHERE s.conversation = ? AND s.sender = ? AND s.client_id = ?",
                         (conversation, sender, client_id)).fetchone()
        return None if row is None else Message(*row, repeated=True)

    def read_after(self, conversation: str, after: int, limit: Optional[int] = None) -> Batch:
        """The messages numbered above ``after`` (at most ``limit``), oldest first."""
        with self._transaction() as db:   # one snapshot: the last number and the messages agree
            row = db.execute("SELECT last_seq FROM conversations WHERE id = ?", (conversation,)).fetchone()
            if row is None:
                raise UnknownConversation(conversation)
            last_seq = row[0]
            if after > last_seq:
                raise AfterBeyondLast(after, last_seq)
            if after == last_seq:
                return Batch([], last_seq)
            (first,) = db.execute("SELECT MIN(seq) FROM messages WHERE conversation = ?", (conversation,)).fetchone()
            first = last_seq + 1 if first is None else first
            gap = after + 1 < first
            rows = db.execute("SELECT seq, sender, body, sent_at, client_ts FROM messages"
                              " WHERE conversation = ? AND seq > ? ORDER BY seq LIMIT ?",
                              (conversation, max(after, first - 1), -1 if limit is None else limit)).fetchall()
        return Batch([Message(*row) for row in rows], last_seq, gap, first if gap else None)

    def prune(self, now: Optional[float] = None) -> int:
        """Drop messages older than the window's age, oldest first in each conversation."""
        cutoff = (time.time() if now is None else now) - self.window_age_s
        deleted = 0
        with self._transaction(immediate=True) as db:
            expired = db.execute("SELECT conversation, MAX(seq) FROM messages WHERE sent_at < ?"
                                 " GROUP BY conversation", (cutoff,)).fetchall()
            for conversation, upto in expired:
                deleted += db.execute("DELETE FROM messages WHERE conversation = ? AND seq <= ?",
                                      (conversation, upto)).rowcount
            db.execute("DELETE FROM sends WHERE sent_at < ?", (cutoff,))
        return deleted

    def close(self) -> None:
        with self.lock:
            self.db.close()
