"""The reservation strategy's consumer: writes the coupon rows Redis granted, at a steady rate.

At least once: a message is acknowledged only after its row is committed, so a consumer killed
mid-row leaves it to be delivered again (RabbitMQ at once, Redis after the visibility timeout),
and the unique index makes the second write a no-op. ``WRITE_RATE`` (rows a second, 500 by
default) is the pace the database sees, whatever the crowd does.
Run: python -m demos.coupon_system.consumer
"""
import argparse
import sys
import time

from demos.brokers import BrokerUnavailable

from .queue import ROWS, Pacer, Queue, consume
from .settings import Settings
from .store import Database


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the coupon rows Redis granted, at a steady rate.")
    parser.add_argument("--rate", type=float, default=None, help="rows a second (default: WRITE_RATE, 500)")
    # fault injection: time for a test (or a reader) to kill the consumer holding a message
    parser.add_argument("--hold-before-write", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long after taking a message, before writing its row")
    args = parser.parse_args()
    settings = Settings.from_env()
    database = Database(settings.database_url)
    try:
        queue = Queue.connect(settings)
    except BrokerUnavailable as problem:
        sys.exit(f"error: {problem}")
    pacer = Pacer(args.rate or settings.write_rate)

    def handle(body, message):
        try:
            batch_id, user, code, reserved_at = (int(body["batch_id"]), str(body["user_id"]), str(body["code"]),
                                                 float(body["reserved_at"]))
        except (KeyError, TypeError, ValueError):
            print(f"rejecting malformed message {body!r}", flush=True)
            message.reject()
            return
        if args.hold_before_write:
            print(f"took {code}, holding {args.hold_before_write:g} s before writing", flush=True)
            time.sleep(args.hold_before_write)
        pacer.wait()
        database.write_reserved(batch_id, user, code, reserved_at, "reservation")
        message.ack()

    consume(queue, ROWS, handle, prefetch=50, ready=f"consumer ready: writing {ROWS.name} at "
            f"{args.rate or settings.write_rate:g} rows/s from {settings.broker_url}")
    print("consumer stopped", flush=True)


if __name__ == "__main__":
    main()
