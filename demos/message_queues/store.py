"""The registration database: users, plus the providers' audit of every send attempt.

SQLite by default (``DATABASE_URL=sqlite:///path``). A write is modelled as the database's round
trip (a fixed latency, slept before the transaction so it holds no lock) plus the real insert.
"""
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL,
    created_at REAL NOT NULL
);
-- every call a provider received, duplicates included: the raw audit
CREATE TABLE IF NOT EXISTS send_attempts (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    pid INTEGER NOT NULL,
    attempted_at REAL NOT NULL
);
-- what reached a person: one row per idempotency key
CREATE TABLE IF NOT EXISTS sends (
    idempotency_key TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sent_at REAL NOT NULL
);
"""


class DuplicateEmail(Exception):
    """The e-mail address is registered already."""


@dataclass(frozen=True)
class NewUser:
    email: str
    phone: str


def sqlite_path(database_url: str) -> str:
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        raise SystemExit(
            f"DATABASE_URL={database_url!r} is not supported: this demo speaks SQLite, "
            f"e.g. sqlite:///var/message_queues/registrations.db (or unset DATABASE_URL)"
        )
    return database_url[len(prefix):]


class Database:
    def __init__(self, database_url: str, write_latency_s: float = 0.0):
        self.path = sqlite_path(database_url)
        self.write_latency_s = write_latency_s
        self._local = threading.local()
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")   # readers never wait for the writer
            db.executescript(SCHEMA)
        finally:
            db.close()

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread, kept open (closing the last one would checkpoint the WAL)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")   # with WAL: durable across a process crash
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def add_user(self, user: NewUser, before_commit: Callable[[int], None] = lambda user_id: None) -> int:
        """Insert the user; ``before_commit`` runs inside the transaction, so if it raises
        (say the broker is down) the user is rolled back and nothing half-written remains."""
        time.sleep(self.write_latency_s)
        try:
            with self.transaction() as db:
                cursor = db.execute(
                    "INSERT INTO users (email, phone, created_at) VALUES (?, ?, ?)",
                    (user.email, user.phone, time.time()),
                )
                before_commit(cursor.lastrowid)
                return cursor.lastrowid
        except sqlite3.IntegrityError as error:
            raise DuplicateEmail(user.email) from error

    def record_attempt(self, channel: str, recipient: str, key: str) -> bool:
        """Record one provider call; return True when it was the first for this key."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO send_attempts (channel, recipient, idempotency_key, pid, attempted_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (channel, recipient, key, os.getpid(), now),
            )
            cursor = db.execute(
                "INSERT OR IGNORE INTO sends (idempotency_key, channel, recipient, sent_at)"
                " VALUES (?, ?, ?, ?)",
                (key, channel, recipient, now),
            )
            return cursor.rowcount == 1

    def audit(self) -> dict:
        """Counts straight from the tables: users, raw attempts and effective sends per channel."""
        with self.transaction() as db:
            users = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
            attempts = dict(db.execute("SELECT channel, COUNT(*) FROM send_attempts GROUP BY channel"))
            sends = dict(db.execute("SELECT channel, COUNT(*) FROM sends GROUP BY channel"))
        return {"users": users, "attempts": attempts, "sends": sends}

    def timeline(self) -> list[tuple]:
        """Per user: (id, created_at, email sent_at, sms sent_at); None where not sent yet."""
        with self.transaction() as db:
            return db.execute(
                "SELECT u.id, u.created_at, e.sent_at, s.sent_at FROM users u"
                " LEFT JOIN sends e ON e.idempotency_key = 'email:' || u.id"
                " LEFT JOIN sends s ON s.idempotency_key = 'sms:' || u.id"
                " ORDER BY u.id"
            ).fetchall()
