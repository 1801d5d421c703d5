"""Events (the article's third wiring) through kombu: inventory writes the restock and its
"inventory updated" event in one transaction (the outbox, demos/outbox.py) and answers; a relay in
inventory publishes the event to the ``<prefix>.inventory`` exchange. Each consumer has its own
durable queue bound to that exchange (not a fire-and-forget fanout), so an event waits for a
consumer that is down:

- ``notifier``: for each event (deduplicated by its ``event_id``), one persistent e-mail job per
  subscriber on ``<prefix>.email``; acked after the jobs are published;
- ``email``: sends each job through the sink (deduplicated by its key), acked after the send;
- ``analytics``: a consumer added later, counting events and keeping a stock view per product
  (``view.py``: each event carries the product's version, so one that arrives after a newer one is
  skipped); inventory is not touched to add it.

At least once everywhere: an ack comes after the work, so a consumer killed mid-work gets the
message again (RabbitMQ at once, Redis after its visibility timeout), and the keys make the repeat
harmless. The embedded filesystem broker hands a message over by moving its file: a consumer
SIGKILLed before its ack loses it (the chapter shows that loss).
Run: python -m demos.rest_vs_messaging.events email [--concurrency 8]
"""
import argparse
import os
import queue
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kombu import Exchange, Queue

from .. import outbox
from ..message_queues.broker import DEFAULT_EXCHANGE, BrokerUnavailable, connect
from ..message_queues.store import Database
from .app import Inventory, Unavailable, subscribers_of
from .mail import SCHEMA as MAIL_SCHEMA, MailFailed, Mailer
from .settings import Settings
from . import view

TOPIC = "inventory.updated"
RECONNECT_EVERY_S = 0.5
VISIBILITY_TIMEOUT_S = 10.0   # Redis: an unacked message comes back this long after its consumer died
RETRY_PAUSE_S = 0.2
SEEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS {consumer}_seen (
    event_id TEXT PRIMARY KEY,
    restock TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
)
"""


def exchange(prefix: str) -> Exchange:
    return Exchange(f"{prefix}.inventory", type="direct", durable=True)


def event_queue(prefix: str, consumer: str) -> Queue:
    """The consumer's own durable queue, bound to the events exchange."""
    return Queue(f"{prefix}.{consumer}", exchange(prefix), routing_key=TOPIC, durable=True)


def email_queue(prefix: str) -> Queue:
    return Queue(f"{prefix}.email", DEFAULT_EXCHANGE, routing_key=f"{prefix}.email", durable=True)


def broker(settings: Settings):
    return connect(settings.broker_url, VISIBILITY_TIMEOUT_S)


# --- inventory's side -----------------------------------------------------------------------

def restock_with_outbox(inventory: Inventory, restock_id: str, product: str, quantity: int) -> int:
    with inventory.database.transaction() as db:
        stock, version = inventory.apply_versioned(db, restock_id, product, quantity)
        outbox.add(db, TOPIC, {"restock": restock_id, "product": product, "quantity": quantity,
                               "stock": stock, "version": version})
        return stock


class Publisher:
    """The relay's publish: to the events exchange, persistent, confirmed on RabbitMQ; a new
    connection after a failure."""

    def __init__(self, settings: Settings):
        self.settings, self.connection = settings, None

    def __call__(self, event_id: str, topic: str, payload: dict) -> None:
        if self.connection is None:
            self.connection = broker(self.settings)
            with self.connection.channel() as channel:
                exchange(self.settings.queue_prefix)(channel).declare()
        try:
            self.connection.Producer().publish(
                {"event_id": event_id, **payload}, exchange=exchange(self.settings.queue_prefix), routing_key=topic,
                delivery_mode="persistent", serializer="json", retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0},
                timeout=1.0, confirm_timeout=1.0)
        except Exception:
            self.connection.release()
            self.connection = None
            raise


def start_relay(database: Database, settings: Settings) -> threading.Event:
    stop = threading.Event()
    relay = outbox.Relay(database.transaction, Publisher(settings), poll_interval_s=0.01)
    reported = []

    def on_error(error):
        if not reported:
            print(f"relay: broker not taking events ({str(error).strip() or type(error).__name__}); retrying", flush=True)
        reported[:] = [True]

    threading.Thread(target=relay.run, args=(stop, on_error), name="outbox relay", daemon=True).start()
    return stop


# --- the consumers ----------------------------------------------------------------------------

def consume(settings: Settings, queues: list, handle, concurrency: int, stopping: list) -> None:
    """Consume ``queues`` with ``handle(body) -> "ack" | "requeue"`` on ``concurrency`` threads;
    acks and requeues happen on this thread (kombu's connections are not thread-safe). Reconnects
    when the broker goes away."""
    pool = ThreadPoolExecutor(concurrency)
    done: queue.Queue = queue.Queue()
    connection = broker(settings)
    while not stopping:
        lost = connection.connection_errors + connection.channel_errors + (OSError,)
        try:
            with connection:
                def received(body, message):
                    pool.submit(lambda: done.put((message, run_handle(handle, body))))
                with connection.Consumer(queues, callbacks=[received], accept=["json"], prefetch_count=concurrency):
                    print(f"worker ready: consuming {', '.join(q.name for q in queues)} from {connection.as_uri()}",
                          flush=True)
                    while not stopping:
                        try:
                            connection.drain_events(timeout=0.02)
                        except socket.timeout:
                            connection.heartbeat_check()
                        while not done.empty():
                            message, outcome = done.get()
                            message.ack() if outcome == "ack" else message.requeue()
        except lost as error:
            print(f"lost the broker ({str(error).strip() or type(error).__name__}): reconnecting", flush=True)
            connection = reconnect(settings, stopping)
            while not done.empty():   # their deliveries died with the old connection: the broker redelivers
                done.get()


def run_handle(handle, body) -> str:
    try:
        return handle(body)
    except Exception as error:   # a bug or an outage in one job must not stop the consumer
        print(f"job failed ({type(error).__name__}: {error}); requeued", flush=True)
        time.sleep(RETRY_PAUSE_S)
        return "requeue"


def reconnect(settings: Settings, stopping: list):
    while not stopping:
        try:
            return broker(settings)
        except BrokerUnavailable:
            time.sleep(RECONNECT_EVERY_S)
    return None


def seen_database(settings: Settings, consumer: str) -> Database:
    return Database(settings.database(consumer), schema=SEEN_SCHEMA.format(consumer=consumer))


def first_time(database: Database, consumer: str, event: dict) -> bool:
    with database.transaction() as db:
        return db.execute(f"SELECT 1 FROM {consumer}_seen WHERE event_id = ?", (event["event_id"],)).fetchone() is None


def mark_seen(database: Database, consumer: str, event: dict) -> None:
    with database.transaction() as db:
        db.execute(f"INSERT INTO {consumer}_seen (event_id, restock, received_at) VALUES (?, ?, ?)"
                   " ON CONFLICT (event_id) DO NOTHING", (event["event_id"], event["restock"], time.time()))


def well_formed(body, keys) -> bool:
    return isinstance(body, dict) and all(isinstance(body.get(key), str) for key in keys)


def main() -> None:
    parser = argparse.ArgumentParser(description="The events wiring's consumers.")
    parser.add_argument("consumer", choices=("notifier", "email", "analytics"))
    parser.add_argument("--concurrency", type=int, default=1, help="jobs in hand at once (e-mail consumer)")
    parser.add_argument("--hold-before-ack", type=float, default=0.0, metavar="SECONDS",
                        help="fault injection: wait this long after the work, before the ack")
    parser.add_argument("--hold-before-send", type=float, default=0.0, metavar="SECONDS",
                        help="fault injection (e-mail consumer): wait this long after taking a job, before sending")
    parser.add_argument("--hold-before-work", type=float, default=0.0, metavar="SECONDS",
                        help="fault injection (analytics): wait this long after taking an event, before the update")
    args = parser.parse_args()
    settings = Settings.from_env()
    prefix = settings.queue_prefix
    hold = lambda: time.sleep(args.hold_before_ack) if args.hold_before_ack else None

    if args.consumer == "email":
        mailer = Mailer(Database(settings.database("email"), schema=MAIL_SCHEMA), settings.smtp_port)
        queues = [email_queue(prefix)]

        def handle(job):
            if not well_formed(job, ("to", "key", "product")):
                print(f"dropping malformed job {job!r}", flush=True)
                return "ack"
            if args.hold_before_send:
                time.sleep(args.hold_before_send)
            try:
                mailer.send(job["to"], job["key"], job["product"])
            except MailFailed as failed:
                print(f"{failed}; requeued", flush=True)
                time.sleep(RETRY_PAUSE_S)
                return "requeue"
            hold()
            return "ack"
    elif args.consumer == "analytics":
        database = Database(settings.database("analytics"),
                            schema=SEEN_SCHEMA.format(consumer="analytics") + ";" + view.VIEW_SCHEMA)
        queues = [event_queue(prefix, "analytics")]
        name = f"{socket.gethostname()}-{os.getpid()}"

        def handle(event):
            if not view.well_formed(event):
                print(f"dropping malformed event {event!r}", flush=True)
                return "ack"
            if args.hold_before_work:
                time.sleep(args.hold_before_work)
            with database.transaction() as db:   # seen, applied (or skipped) and recorded together
                view.apply(db, event, name)
            hold()
            return "ack"
    else:
        database = seen_database(settings, args.consumer)
        queues = [event_queue(prefix, args.consumer)]
        jobs = email_queue(prefix)
        local = threading.local()

        def handle(event):
            if not well_formed(event, ("event_id", "restock", "product")):
                print(f"dropping malformed event {event!r}", flush=True)
                return "ack"
            if not first_time(database, args.consumer, event):
                return "ack"                      # a redelivery: done already
            try:
                subscribers = subscribers_of(settings.subscribers_url, event["product"])
            except Unavailable as problem:
                print(f"{problem}; requeued", flush=True)
                time.sleep(RETRY_PAUSE_S)
                return "requeue"
            if getattr(local, "connection", None) is None:
                local.connection = broker(settings)
            try:
                producer = local.connection.Producer()
                for subscriber in subscribers:
                    producer.publish({"to": subscriber["email"], "key": f"{event['restock']}:{subscriber['id']}",
                                      "product": event["product"]}, exchange=DEFAULT_EXCHANGE,
                                     routing_key=jobs.name, declare=[jobs], delivery_mode="persistent",
                                     serializer="json", retry=True, timeout=2.0, confirm_timeout=2.0)
            except Exception:
                local.connection.release()
                local.connection = None
                raise
            mark_seen(database, args.consumer, event)
            hold()
            return "ack"

    with broker(settings) as connection, connection.channel() as channel:   # queues and bindings exist
        for q in queues:                                                      # before the first event
            q(channel).declare()
    stopping: list = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        consume(settings, queues, handle, max(1, args.concurrency), stopping)
    except BrokerUnavailable as problem:
        sys.exit(f"error: {problem}")
    print(f"{args.consumer} stopped", flush=True)


if __name__ == "__main__":
    main()
