"""Section 5, a log pipeline (日志处理): applications ship their log lines through the broker to an
aggregator that counts errors per minute (the article's collectors, Kafka, Logstash, in miniature).

- ``app --port P``: a small web application; ``GET /page`` answers at once and logs one line
  (every tenth an ERROR). A ``logging`` handler puts each line in memory and a shipping thread
  publishes it to ``<prefix>.logs``: a request never waits for the broker, let alone the
  aggregator. ``GET /stats``: lines shipped, waiting to ship, dropped (the buffer full), and the
  broker's queue length.
- ``aggregate [--work-ms N]``: takes lines off the queue, spends ``N`` ms on each (a slow
  aggregator), records it once by its id (every delivery kept raw) and adds the errors to their
  minute, in one transaction, then acknowledges.

The guarantee: on RabbitMQ and Redis every line shipped is counted exactly once, an aggregator
SIGKILLed holding one included (it is delivered again; the line's id keeps the count right). On the
embedded filesystem broker, the line a killed aggregator held is lost.
Run: python -m demos.message_queues.logs aggregate
     python -m demos.message_queues.logs app --port 8000
"""
import argparse
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import time
import uuid

from flask import Flask, jsonify

from .. import web
from .broker import BrokerUnavailable, connect
from .messaging import Publisher, consume_forever, declare, durable, message_counter
from .settings import DEFAULT_DATA_DIR
from .store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_lines (id TEXT PRIMARY KEY, app TEXT NOT NULL, level TEXT NOT NULL,
    logged_at DOUBLE PRECISION NOT NULL, counted_at DOUBLE PRECISION NOT NULL);
-- every delivery, repeats included: the raw audit
CREATE TABLE IF NOT EXISTS line_deliveries (id {id}, line_id TEXT NOT NULL, pid INTEGER NOT NULL,
    received_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS errors_per_minute (minute BIGINT PRIMARY KEY, errors INTEGER NOT NULL)
"""
BUFFER = 100_000   # lines an application holds while the broker is away; beyond, it drops and counts


class Shipper(logging.Handler):
    """A logging handler that never blocks: lines wait in memory for the shipping thread."""

    def __init__(self, app_name: str):
        super().__init__()
        self.app_name = app_name
        self.lines: queue.Queue = queue.Queue(BUFFER)
        self.shipped = self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        line = {"id": uuid.uuid4().hex, "app": self.app_name, "level": record.levelname,
                "logged_at": record.created, "message": record.getMessage()}
        try:
            self.lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def ship(self, publish, stop: threading.Event) -> None:
        """Publish the lines in order; one the broker refuses is tried again after a pause."""
        while not stop.is_set():
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            while not stop.is_set():
                try:
                    publish(line)
                    self.shipped += 1
                    break
                except BrokerUnavailable as problem:
                    print(f"shipping: {problem}", flush=True)
                    stop.wait(0.5)


class Aggregator:
    def __init__(self, database: Database):
        self.database = database

    def count(self, line: dict) -> bool:
        """Record the line once and add an error to its minute; False for a line seen before."""
        with self.database.transaction() as db:
            db.execute("INSERT INTO line_deliveries (line_id, pid, received_at) VALUES (?, ?, ?)",
                       (line["id"], os.getpid(), time.time()))
            new = db.execute("INSERT INTO log_lines (id, app, level, logged_at, counted_at) VALUES (?, ?, ?, ?, ?)"
                             " ON CONFLICT (id) DO NOTHING",
                             (line["id"], line["app"], line["level"], line["logged_at"], time.time())).rowcount == 1
            if new and line["level"] == "ERROR":
                db.execute("INSERT INTO errors_per_minute (minute, errors) VALUES (?, 1) ON CONFLICT (minute)"
                           " DO UPDATE SET errors = errors_per_minute.errors + 1", (int(line["logged_at"] // 60),))
            return new

    def audit(self) -> dict:
        with self.database.transaction() as db:
            return {"lines": db.execute("SELECT COUNT(*) FROM log_lines").fetchone()[0],
                    "deliveries": db.execute("SELECT COUNT(*) FROM line_deliveries").fetchone()[0],
                    "errors_per_minute": {str(minute): errors for minute, errors in
                                          db.execute("SELECT minute, errors FROM errors_per_minute ORDER BY minute")}}


def well_formed(line) -> bool:
    return (isinstance(line, dict) and isinstance(line.get("id"), str) and len(line["id"]) == 32
            and isinstance(line.get("app"), str) and line.get("level") in ("INFO", "ERROR")
            and isinstance(line.get("logged_at"), float))


def create_app(shipper: Shipper, count_queue=lambda: None) -> Flask:
    app = web.json_app(__name__, stats=lambda: {
        "shipped": shipper.shipped, "waiting": shipper.lines.qsize(), "dropped": shipper.dropped,
        "queue_length": count_queue()})
    log = logging.getLogger(f"app.{shipper.app_name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(shipper)
    requests = itertools.count(1)

    @app.get("/page")
    def page():
        n = next(requests)
        if n % 10 == 0:
            log.error("request %d failed to find its page", n)
        else:
            log.info("request %d served", n)
        return jsonify(n=n)

    return app


# pragma: no mutate block  (the command line, run only as a process by the tests and scenarios)
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--name", default="shop")
    aggregate = commands.add_parser("aggregate")
    aggregate.add_argument("--work-ms", type=float, default=0.0, help="what one line costs (a slow aggregator)")
    aggregate.add_argument("--hold-before-count", type=float, default=0.0, metavar="SECONDS",
                           help="fault injection: wait this long after taking a line, before counting it")
    args = parser.parse_args()
    data_dir = os.environ.get("DATA_DIR", DEFAULT_DATA_DIR)
    logs = durable(f"{os.environ.get('QUEUE_PREFIX') or 'logs'}.logs")
    broker_url = os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker"
    if args.command == "aggregate":
        aggregator = Aggregator(Database(os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir}/logs.db",
                                         schema=SCHEMA))
        stopping: list = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

        def handle(line, message):
            if not well_formed(line):
                print(f"rejecting malformed line {line!r}", flush=True)
                message.reject()
                return
            if args.hold_before_count:
                print(f"took {line['id']}, holding {args.hold_before_count} s before counting", flush=True)
                time.sleep(args.hold_before_count)
            time.sleep(args.work_ms / 1000)
            aggregator.count(line)
            message.ack()

        try:
            consume_forever(broker_url, float(os.environ.get("BROKER_VISIBILITY_TIMEOUT", 30)), [logs], handle,
                            stopping)
        except BrokerUnavailable as problem:
            sys.exit(f"error: {problem}")
        return
    try:
        connection, counting = connect(broker_url), connect(broker_url)
    except BrokerUnavailable as problem:
        sys.exit(f"error: {problem}")
    declare(connection, [logs])
    publisher, count_queue = Publisher(connection), message_counter(counting, logs)
    count_lock = threading.Lock()

    def queue_length():
        with count_lock:   # one channel, one thread at a time
            return count_queue()

    shipper = Shipper(args.name)
    threading.Thread(target=shipper.ship, args=(lambda line: publisher.publish(logs.name, line), threading.Event()),
                     daemon=True, name="ship").start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    import waitress
    print(f"app {args.name} on http://{args.host}:{args.port}; shipping its log to {logs.name} on {broker_url}",
          flush=True)
    waitress.serve(create_app(shipper, queue_length), host=args.host, port=args.port, threads=4,
                   connection_limit=2000, backlog=2048, ident="app", _quiet=True)


if __name__ == "__main__":
    main()
