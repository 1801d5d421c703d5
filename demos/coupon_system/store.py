"""The coupon database: batches, coupons, redemptions and bulk jobs, on SQLite or PostgreSQL.

Chapter 4's SQL layer (demos/message_queues/store.py) carries the connections, transactions and
the few SQL differences (its ``DIALECTS``); this module only adds the tables and the queries.
Every claim and redemption leaves a row, and ``audit()`` counts those raw rows: coupons beyond
the stock (oversold), users holding two from one batch (double claims), coupons redeemed twice.

The tables carry no constraint that would hide a broken strategy: the unique index "one coupon
per user and batch" is created by the strategies that rely on it (``one_per_user=True``), not by
the naive one, whose oversell and double claims the audit then shows.
"""
import json
import time
import uuid
from dataclasses import dataclass
from typing import Optional

from demos.message_queues.store import Connection, DatabaseUnavailable, redacted
from demos.message_queues.store import Database as SqlDatabase

__all__ = ["Database", "Batch", "NotFound", "Conflict", "Gone", "Forbidden", "DatabaseUnavailable", "redacted"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id {id},
    name TEXT NOT NULL,
    stock INTEGER NOT NULL,
    issued INTEGER NOT NULL DEFAULT 0,
    rules TEXT NOT NULL,
    valid_from DOUBLE PRECISION NOT NULL,
    valid_until DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS coupons (
    id {id},
    code TEXT NOT NULL UNIQUE,
    batch_id INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    via TEXT NOT NULL,
    reserved_at DOUBLE PRECISION NOT NULL,
    issued_at DOUBLE PRECISION NOT NULL,
    redeemed_order TEXT,
    redeemed_at DOUBLE PRECISION,
    discount_cents INTEGER
);
-- every redemption written, so that a coupon used twice shows as two rows
CREATE TABLE IF NOT EXISTS redemptions (
    id {id},
    code TEXT NOT NULL,
    order_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    discount_cents INTEGER NOT NULL,
    redeemed_at DOUBLE PRECISION NOT NULL
);
-- this database's name for itself, so that keys kept elsewhere (Redis) never mix two databases
CREATE TABLE IF NOT EXISTS instance (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bulk_jobs (
    id {id},
    batch_id INTEGER NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
)
"""
ONE_PER_USER = "CREATE UNIQUE INDEX IF NOT EXISTS coupons_one_per_user ON coupons (batch_id, user_id)"


class NotFound(LookupError):
    """No such batch, coupon or bulk job (404)."""


class Conflict(Exception):
    """The request cannot be done in the current state: exhausted, not open yet, used (409)."""


class Gone(Exception):
    """The batch's validity window is over (410)."""


class Forbidden(Exception):
    """The coupon belongs to another user (403)."""


@dataclass(frozen=True)
class Batch:
    id: int
    name: str
    stock: int
    rules: list
    valid_from: float
    valid_until: float

    def check_open(self, now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        if now < self.valid_from:
            raise Conflict(f"batch {self.id} opens at {self.valid_from:.0f} (epoch seconds), not yet")
        if now > self.valid_until:
            raise Gone(f"batch {self.id} expired at {self.valid_until:.0f} (epoch seconds)")


def new_code() -> str:
    return uuid.uuid4().hex[:16]


class Database(SqlDatabase):
    """Chapter 4's connections and transactions (one connection per thread, ``transaction()``)
    over this chapter's tables."""

    def __init__(self, database_url: str, *, one_per_user: bool = True):
        super().__init__(database_url, schema=SCHEMA + (";" + ONE_PER_USER if one_per_user else ""))
        try:
            with self.transaction() as db:
                db.execute("INSERT INTO instance (one, id) VALUES (1, ?) ON CONFLICT DO NOTHING", (uuid.uuid4().hex[:12],))
                self.instance = db.execute("SELECT id FROM instance").fetchone()[0]
        except DatabaseUnavailable as problem:
            raise SystemExit(f"error: {problem}") from problem

    # --- batches --------------------------------------------------------------------------

    def create_batch(self, name: str, stock: int, rules: list, valid_from: float, valid_until: float) -> int:
        with self.transaction() as db:
            [(batch_id,)] = db.execute(
                "INSERT INTO batches (name, stock, rules, valid_from, valid_until, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (name, stock, json.dumps(rules), valid_from, valid_until, time.time())).fetchall()
        return batch_id

    def batch(self, batch_id: int) -> Batch:
        row = self.autocommit().execute(
            "SELECT id, name, stock, rules, valid_from, valid_until FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise NotFound(f"no batch {batch_id}")
        return Batch(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    def batch_ids(self) -> list[int]:
        return [row[0] for row in self.autocommit().execute("SELECT id FROM batches ORDER BY id")]

    def issued(self, batch_id: int) -> int:
        row = self.autocommit().execute("SELECT issued FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return row[0] if row else 0

    # --- claiming -------------------------------------------------------------------------

    def existing(self, db: Connection, batch_id: int, user_id: str) -> Optional[str]:
        row = db.execute("SELECT code FROM coupons WHERE batch_id = ? AND user_id = ? ORDER BY id LIMIT 1",
                         (batch_id, user_id)).fetchone()
        return row[0] if row else None

    def claim_atomic(self, batch_id: int, user_id: str) -> tuple[str, bool]:
        """One transaction: the user's coupon if they have one; else take one from the stock with
        a conditional update (``issued < stock``) and insert the coupon, which the unique index
        (batch, user) refuses for a second one. Returns (code, newly issued)."""
        now = time.time()
        try:
            with self.transaction() as db:
                if code := self.existing(db, batch_id, user_id):
                    return code, False
                taken = db.execute("UPDATE batches SET issued = issued + 1 WHERE id = ? AND issued < stock"
                                   " RETURNING issued", (batch_id,)).fetchall()
                if not taken:
                    raise Conflict(f"batch {batch_id} is exhausted")
                code = new_code()
                db.execute("INSERT INTO coupons (code, batch_id, user_id, via, reserved_at, issued_at)"
                           " VALUES (?, ?, ?, 'atomic', ?, ?)", (code, batch_id, user_id, now, now))
                return code, True
        except self._duplicate:   # the same user's other request won the race: theirs is the one
            code = self.existing(self.autocommit(), batch_id, user_id)
            if code is None:
                raise
            return code, False

    def claim_naive(self, batch_id: int, user_id: str, race_window_s: float = 0.0) -> tuple[str, bool]:
        """BROKEN ON PURPOSE: read, check, then write, each statement on its own. Two requests
        that read before either writes both pass the check: the batch is oversold and a user who
        double-clicks can get two coupons. ``race_window_s`` widens the gap between read and write."""
        db = self.autocommit()
        if code := self.existing(db, batch_id, user_id):
            return code, False
        (issued, stock) = db.execute("SELECT issued, stock FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if issued >= stock:
            raise Conflict(f"batch {batch_id} is exhausted")
        if race_window_s:
            time.sleep(race_window_s)
        code, now = new_code(), time.time()
        db.execute("INSERT INTO coupons (code, batch_id, user_id, via, reserved_at, issued_at)"
                   " VALUES (?, ?, ?, 'naive', ?, ?)", (code, batch_id, user_id, now, now))
        db.execute("UPDATE batches SET issued = ? WHERE id = ?", (issued + 1, batch_id))   # a lost update too
        return code, True

    def write_reserved(self, batch_id: int, user_id: str, code: str, reserved_at: float, via: str) -> bool:
        """The reservation strategy's consumer: write a coupon Redis has already granted. A
        redelivered message finds the row there (the unique index) and writes nothing. True when
        the row is new."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO coupons (code, batch_id, user_id, via, reserved_at, issued_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING", (code, batch_id, user_id, via, reserved_at, time.time()))
            if cursor.rowcount == 1:
                db.execute("UPDATE batches SET issued = issued + 1 WHERE id = ?", (batch_id,))
                return True
            return False

    # --- redeeming ------------------------------------------------------------------------

    def coupon(self, code: str) -> dict:
        row = self.autocommit().execute(
            "SELECT code, batch_id, user_id, issued_at, redeemed_order, redeemed_at, discount_cents"
            " FROM coupons WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise NotFound(f"no coupon {code}")
        return dict(zip(("code", "batch_id", "user_id", "issued_at", "redeemed_order", "redeemed_at",
                         "discount_cents"), row))

    def redeem(self, code: str, user_id: str, order_id: str, amount_cents: int, discount) -> tuple[int, bool]:
        """Use the coupon on the order exactly once: ``discount(batch_id)`` computes the discount
        (raising when a rule refuses, which changes nothing). The same order again gets the same
        answer (an idempotent retry); another order gets Conflict. Returns (discount, new)."""
        for attempt in range(2):
            with self.transaction() as db:
                row = db.execute("SELECT batch_id, user_id, redeemed_order, discount_cents FROM coupons WHERE code = ?",
                                 (code,)).fetchone()
                if row is None:
                    raise NotFound(f"no coupon {code}")
                batch_id, owner, redeemed_order, given = row
                if owner != user_id:
                    raise Forbidden(f"coupon {code} belongs to another user")
                if redeemed_order == order_id:
                    return given, False
                if redeemed_order is not None:
                    raise Conflict(f"coupon {code} was used already, on another order")
                cents_off = discount(batch_id)
                now = time.time()
                used = db.execute("UPDATE coupons SET redeemed_order = ?, redeemed_at = ?, discount_cents = ?"
                                  " WHERE code = ? AND redeemed_order IS NULL",
                                  (order_id, now, cents_off, code)).rowcount
                if used == 1:
                    db.execute("INSERT INTO redemptions (code, order_id, amount_cents, discount_cents, redeemed_at)"
                               " VALUES (?, ?, ?, ?, ?)", (code, order_id, amount_cents, cents_off, now))
                    return cents_off, True
            # another request used it between our read and our update: read again, once
        raise Conflict(f"coupon {code} was used already, on another order")

    # --- bulk issuance --------------------------------------------------------------------

    def create_bulk_job(self, batch_id: int, total: int) -> int:
        with self.transaction() as db:
            [(job_id,)] = db.execute("INSERT INTO bulk_jobs (batch_id, total, created_at) VALUES (?, ?, ?) RETURNING id",
                                     (batch_id, total, time.time())).fetchall()
        return job_id

    def bulk_progress(self, job_id: int, *, issued: bool) -> None:
        """Count one user of the job as handled (issued, or refused: already holding one, exhausted)."""
        column = "done" if issued else "refused"
        with self.transaction() as db:
            db.execute(f"UPDATE bulk_jobs SET {column} = {column} + 1, finished_at = CASE WHEN done + refused + 1"
                       f" >= total THEN ? ELSE finished_at END WHERE id = ?", (time.time(), job_id))

    def bulk_job(self, job_id: int) -> dict:
        row = self.autocommit().execute("SELECT id, batch_id, total, done, refused, created_at, finished_at"
                                        " FROM bulk_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no bulk job {job_id}")
        return dict(zip(("id", "batch_id", "total", "issued", "refused", "created_at", "finished_at"), row))

    # --- the audit: raw rows --------------------------------------------------------------

    def audit(self) -> dict:
        """Counted straight from the rows: per batch the stock, the coupons written and how many
        are beyond the stock; users holding more than one coupon of a batch (each extra counted);
        coupons redeemed more than once (each extra counted)."""
        db = self.autocommit()
        batches = {}
        for batch_id, stock, issued in db.execute("SELECT id, stock, issued FROM batches ORDER BY id").fetchall():
            rows, users = db.execute("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM coupons WHERE batch_id = ?",
                                     (batch_id,)).fetchone()
            batches[str(batch_id)] = {"stock": stock, "issued_counter": issued, "coupons": rows, "users": users,
                                      "oversold": max(0, rows - stock), "double_claims": rows - users}
        double_redeems = db.execute("SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM redemptions"
                                    " GROUP BY code HAVING COUNT(*) > 1) AS twice").fetchone()[0]
        redemptions = db.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0]
        return {"batches": batches,
                "coupons": sum(batch["coupons"] for batch in batches.values()),
                "oversold": sum(batch["oversold"] for batch in batches.values()),
                "double_claims": sum(batch["double_claims"] for batch in batches.values()),
                "redemptions": redemptions, "double_redeems": int(double_redeems)}

    def issue_times(self) -> list[tuple]:
        """Every coupon's (reserved_at, issued_at, via): when it was granted and when its row was written."""
        return self.autocommit().execute("SELECT reserved_at, issued_at, via FROM coupons ORDER BY issued_at").fetchall()

    def codes(self) -> set[str]:
        return {row[0] for row in self.autocommit().execute("SELECT code FROM coupons")}
