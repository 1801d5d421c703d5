"""The bulk worker: issues a batch to a chosen set of users (the article's 推送 issuance) from the
queue, at a throttled pace (``BULK_RATE`` issuances a second) so that the claims of the crowd
keep their latency.

Each message is one user of one job; the worker issues through the same strategy the service
uses (``--strategy atomic`` or ``reservation``), so the unique index (or Redis's holders) gives
each user exactly one however often a message is delivered, and counts the job's progress in the
database (``GET /bulk/<job>``). At least once: acknowledged after the coupon and the progress.
Run: python -m demos.coupon_system.bulk --strategy atomic
"""
import argparse
import importlib
import sys

from demos.brokers import BrokerUnavailable

from .app import Services, Unavailable
from .queue import BULK, Pacer, Queue, consume
from .settings import Settings
from .store import Conflict, Database, Gone, NotFound


def main() -> None:
    parser = argparse.ArgumentParser(description="Issue bulk coupons from the queue, throttled.")
    parser.add_argument("--strategy", choices=("atomic", "reservation"), default="atomic")
    parser.add_argument("--rate", type=float, default=None, help="issuances a second (default: BULK_RATE, 200)")
    args = parser.parse_args()
    settings = Settings.from_env()
    strategy = importlib.import_module(f"demos.coupon_system.{args.strategy}").STRATEGY
    services = Services(settings, Database(settings.database_url, one_per_user=strategy.one_per_user))
    try:
        strategy.setup(services)
        queue = services.queue or Queue.connect(settings)
    except (BrokerUnavailable, Unavailable) as problem:
        sys.exit(f"error: {problem}")
    rate = args.rate or settings.bulk_rate
    pacer, batches = Pacer(rate), {}

    def handle(body, message):
        try:
            job, batch_id, user = int(body["job"]), int(body["batch_id"]), str(body["user_id"])
        except (KeyError, TypeError, ValueError):
            print(f"rejecting malformed message {body!r}", flush=True)
            message.reject()
            return
        pacer.wait()
        try:
            if batch_id not in batches:
                batches[batch_id] = services.database.batch(batch_id)
            _, new = strategy.claim(services, batches[batch_id], user)
        except (Conflict, Gone, NotFound):
            new = False
        # a redelivered message counts twice here: progress is what was handled, the audit what was issued
        services.database.bulk_progress(job, issued=new)
        message.ack()

    consume(queue, BULK, handle, prefetch=20,
            ready=f"bulk worker ready: {args.strategy} at {rate:g} issuances/s from {settings.broker_url}")
    print("bulk worker stopped", flush=True)


if __name__ == "__main__":
    main()
