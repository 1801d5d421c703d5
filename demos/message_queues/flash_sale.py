"""Section 3, peak shaving (流量削峰): a flash sale whose burst is ten times what the order writer takes.

The order writer (the database, modelled) takes one order at a time, at most ``WRITE_RATE`` (50) a
second, however many ask. Two fronts for ``POST /buy`` ``{"product": "apple", "quantity": 1}``:

- ``serve --mode direct``: every request waits for the writer; a request that cannot get it within
  ``WRITER_WAIT_S`` gets 503. Under a burst the waits grow until clients time out.
- ``serve --mode shaved``: the front admits an order while the queue holds fewer than
  ``--max-queue`` (publishing it, persistent, then 202 with its id) and answers 429 at once when
  full; ``consume`` writes from the queue at the writer's rate; ``GET /orders/<id>`` says whether
  it is written yet.

The guarantee: every accepted (202) order is written exactly once. The consumer acknowledges after
the write; a consumer killed before its ack gets the order again (RabbitMQ at once, Redis after the
visibility timeout), and the write is keyed by the order's id, so the repeat adds a raw attempt and
no second order. The embedded filesystem broker hands the message over by moving its file: a
consumer killed holding it loses that order.
Run: python -m demos.message_queues.flash_sale serve --mode shaved --port 8000
     python -m demos.message_queues.flash_sale consume
"""
import argparse
import os
import re
import signal
import sys
import threading
import time
import uuid

from flask import Flask, jsonify, request

from .. import web
from .broker import BrokerUnavailable, connect
from .messaging import BadOrder, Publisher, consume_forever, declare, durable, message_counter, parse_order
from .settings import DEFAULT_DATA_DIR
from .store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS sale_orders (order_id TEXT PRIMARY KEY, product TEXT NOT NULL,
    quantity INTEGER NOT NULL, accepted_at DOUBLE PRECISION NOT NULL, written_at DOUBLE PRECISION NOT NULL);
-- every write the writer was asked for, repeats included: the raw audit
CREATE TABLE IF NOT EXISTS write_attempts (id {id}, order_id TEXT NOT NULL, pid INTEGER NOT NULL,
    attempted_at DOUBLE PRECISION NOT NULL)
"""
WRITE_RATE = 50.0
WRITER_WAIT_S = 1.0
COUNT_EVERY_S = 0.02      # how often the shaved front asks the broker how long the queue is
ORDER_ID = re.compile(r"[0-9a-f]{32}")


class WriterBusy(Exception):
    pass


class Writer:
    """The order database's capacity: one write at a time, at most ``rate`` a second."""

    def __init__(self, database: Database, rate: float = WRITE_RATE):
        self.database, self.interval_s = database, 1.0 / rate
        self.lock = threading.Lock()
        self.next_at = 0.0

    def write(self, order_id: str, product: str, quantity: int, accepted_at: float,
              wait_s: float = -1) -> bool:
        """Write the order (True), or find it written already (False: a repeat); WriterBusy when
        the writer is not free within ``wait_s`` (-1: wait as long as it takes)."""
        if not self.lock.acquire(timeout=wait_s):
            raise WriterBusy(f"the order writer was busy for {wait_s:g} s")
        try:
            now = time.monotonic()
            if self.next_at > now:
                time.sleep(self.next_at - now)
            self.next_at = max(now, self.next_at) + self.interval_s
            with self.database.transaction() as db:
                db.execute("INSERT INTO write_attempts (order_id, pid, attempted_at) VALUES (?, ?, ?)",
                           (order_id, os.getpid(), time.time()))
                return db.execute("INSERT INTO sale_orders (order_id, product, quantity, accepted_at, written_at)"
                                  " VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                                  (order_id, product, quantity, accepted_at, time.time())).rowcount == 1
        finally:
            self.lock.release()


def audit(database: Database) -> dict:
    with database.transaction() as db:
        return {"written": db.execute("SELECT COUNT(*) FROM sale_orders").fetchone()[0],
                "attempts": db.execute("SELECT COUNT(*) FROM write_attempts").fetchone()[0]}


class Admission:
    """The shaved front's bound: admit while the queue (as the broker last counted it, plus what
    this front published since) is shorter than ``max_queue``."""

    def __init__(self, max_queue: int, count=lambda: 0):
        self.max_queue, self.count = max_queue, count
        self.lock = threading.Lock()
        self.counted, self.since = 0, 0
        self.accepted = self.rejected = 0

    def refresh(self) -> None:
        with self.lock:
            before = self.since            # published before the count began: in the count
        counted = self.count()
        with self.lock:
            self.counted, self.since = counted, self.since - before

    def take(self) -> bool:
        with self.lock:
            if self.counted + self.since >= self.max_queue:
                self.rejected += 1
                return False
            self.since += 1
            self.accepted += 1
            return True

    def give_back(self) -> None:   # the publish failed: the order was not accepted after all
        with self.lock:
            self.since -= 1
            self.accepted -= 1

    def stats(self) -> dict:
        with self.lock:
            return {"queue_length": self.counted + self.since, "accepted": self.accepted, "rejected": self.rejected}


def create_app(mode: str, database: Database, writer: Writer | None = None, admission: Admission | None = None,
               publish=None) -> Flask:
    app = web.json_app(__name__, stats=lambda: {**(admission.stats() if admission else {}), **audit(database)})

    @app.post("/buy")
    def buy():
        try:
            product, quantity = parse_order(request.get_data(cache=False))
        except BadOrder as problem:
            return jsonify(error=str(problem)), 400
        order_id, now = uuid.uuid4().hex, time.time()
        if mode == "direct":
            try:
                writer.write(order_id, product, quantity, now, wait_s=WRITER_WAIT_S)
            except WriterBusy as problem:
                return jsonify(error=f"order not taken: {problem}"), 503
            return jsonify(id=order_id, status="written"), 201
        if not admission.take():
            return jsonify(error="sold out for now: the queue is full, try again later"), 429
        try:
            publish({"order_id": order_id, "product": product, "quantity": quantity, "accepted_at": now})
        except BrokerUnavailable as problem:
            admission.give_back()
            return jsonify(error=f"order not taken, try again later: {problem}"), 503
        return jsonify(id=order_id, status="accepted"), 202

    @app.get("/orders/<order_id>")
    def show(order_id: str):
        if not ORDER_ID.fullmatch(order_id):
            return jsonify(error="an order id is 32 hexadecimal digits"), 400
        with database.transaction() as db:
            row = db.execute("SELECT written_at FROM sale_orders WHERE order_id = ?", (order_id,)).fetchone()
        return jsonify(id=order_id, status="written" if row else "not written (yet)")

    return app


# pragma: no mutate block  (the command line, run only as a process by the tests and scenarios)
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--mode", choices=("direct", "shaved"), default="shaved")
    serve.add_argument("--max-queue", type=int, default=200)
    serve.add_argument("--threads", type=int, default=4)
    consume = commands.add_parser("consume")
    consume.add_argument("--hold-before-write", type=float, default=0.0, metavar="SECONDS",
                         help="fault injection: wait this long after taking an order, before the write")
    consume.add_argument("--hold-before-ack", type=float, default=0.0, metavar="SECONDS",
                         help="fault injection: wait this long after the write, before the ack")
    args = parser.parse_args()
    data_dir = os.environ.get("DATA_DIR", DEFAULT_DATA_DIR)
    database = Database(os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir}/sale.db", schema=SCHEMA)
    writer = Writer(database, float(os.environ.get("WRITE_RATE", WRITE_RATE)))
    queue = durable(f"{os.environ.get('QUEUE_PREFIX') or 'sale'}.orders")
    broker_url = os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker"
    stopping: list = []
    if args.command == "consume":
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

        def handle(order, message):
            if not isinstance(order, dict) or not ORDER_ID.fullmatch(str(order.get("order_id"))) \
                    or not isinstance(order.get("quantity"), int) or not isinstance(order.get("accepted_at"), float):
                print(f"rejecting malformed order {order!r}", flush=True)
                message.reject()
                return
            if args.hold_before_write:
                print(f"took {order['order_id']}, holding {args.hold_before_write} s before the write", flush=True)
                time.sleep(args.hold_before_write)
            writer.write(order["order_id"], order["product"], order["quantity"], order["accepted_at"])
            if args.hold_before_ack:
                print(f"wrote {order['order_id']}, holding {args.hold_before_ack} s before the ack", flush=True)
                time.sleep(args.hold_before_ack)
            message.ack()

        try:
            consume_forever(broker_url, float(os.environ.get("BROKER_VISIBILITY_TIMEOUT", 30)), [queue], handle,
                            stopping)
        except BrokerUnavailable as problem:
            sys.exit(f"error: {problem}")
        return
    admission = publish = None
    if args.mode == "shaved":
        try:
            connection, counting = connect(broker_url), connect(broker_url)
        except BrokerUnavailable as problem:
            sys.exit(f"error: {problem}")
        declare(connection, [queue])
        publisher = Publisher(connection)
        publish = lambda order: publisher.publish(queue.name, order)   # noqa: E731
        admission = Admission(args.max_queue, message_counter(counting, queue))

        def keep_counting():
            while True:
                try:
                    admission.refresh()
                except Exception as error:   # the broker away: keep the last count, try again
                    print(f"counting the queue: {error}", flush=True)
                    time.sleep(0.5)
                time.sleep(COUNT_EVERY_S)

        admission.refresh()
        threading.Thread(target=keep_counting, daemon=True, name="count").start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    import waitress
    print(f"flash sale ({args.mode}) on http://{args.host}:{args.port}; database {database.url}", flush=True)
    waitress.serve(create_app(args.mode, database, writer, admission, publish), host=args.host, port=args.port,
                   threads=args.threads, connection_limit=4000, backlog=4096, ident="flash-sale", _quiet=True)


if __name__ == "__main__":
    main()
