"""Reconcile the reservation strategy's books: Redis's holders against the database's rows.

Redis says who was granted which coupon (``coupon:{DB:BATCH}:holders``); the database has the
rows the consumer wrote. Once the queue has drained they agree. A holder without a row is a grant
whose row message was lost (a consumer killed on the embedded broker, a service killed between
the script and the publish when its user never retried); ``--republish`` sends those rows again,
the same message the service sends, and the consumer writes each at most once. A row without a
holder means Redis lost grants (it ran without its append-only file): reported, never "fixed" by
refilling the stock.
Run: REDIS_URL=... python -m demos.coupon_system.reconcile [--republish]
"""
import argparse
import json
import sys
import time

from demos.brokers import BrokerUnavailable

from .app import Unavailable
from .queue import Queue
from .reservation import Reservations
from .settings import Settings
from .store import Database


def books(database: Database, reservations: Reservations) -> dict:
    """Per batch: holders in Redis, rows in the database, and the differences."""
    report = {}
    for batch_id in database.batch_ids():
        holders = reservations.holders(batch_id)
        rows = dict(database.autocommit().execute("SELECT user_id, code FROM coupons WHERE batch_id = ?",
                                                  (batch_id,)).fetchall())
        report[batch_id] = {"holders": len(holders), "rows": len(rows),
                            "holders_without_row": {user: code for user, code in holders.items() if rows.get(user) != code},
                            "rows_without_holder": sorted(user for user in rows if user not in holders)}
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Compare Redis's grants with the database's coupon rows.")
    parser.add_argument("--republish", action="store_true", help="send the missing rows to the consumer again")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    database = Database(settings.database_url)
    try:
        reservations = Reservations(settings.redis_url, database.instance)
        queue = Queue.connect(settings) if args.republish else None
    except (Unavailable, BrokerUnavailable) as problem:
        sys.exit(f"error: {problem}")
    report = books(database, reservations)
    republished = 0
    for batch_id, batch in report.items():
        for user, code in batch["holders_without_row"].items():
            if queue is not None:
                queue.publish_row(batch_id, user, code, time.time())
                republished += 1
    summary = {str(batch_id): {"holders": batch["holders"], "rows": batch["rows"],
                               "holders_without_row": len(batch["holders_without_row"]),
                               "rows_without_holder": len(batch["rows_without_holder"])}
               for batch_id, batch in report.items()}
    print(json.dumps({"batches": summary, "republished": republished}, indent=2))
    return 1 if any(batch["rows_without_holder"] for batch in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
