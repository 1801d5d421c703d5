"""Section 4, point-to-point against publish/subscribe (点对点, 发布订阅): one publisher, three wirings.

- ``competing``: one durable queue, every consumer takes from it: the work is shared, each message
  goes to one consumer (the article's two clients sharing a queue). Adding consumers adds throughput.
- ``fanout``: a fanout exchange, each subscriber binding its own auto-deleted queue for as long as
  it is connected (kombu over Redis makes this Redis PUB/SUB): every subscriber gets every
  message sent while it listens, and nothing is kept for one that is away.
- ``durable``: a durable queue per subscriber (``<prefix>.<name>``), bound to a direct exchange
  under one routing key, so the broker keeps a subscriber's messages while it is away, on Redis as
  on RabbitMQ: what decides is the wiring, not the broker's brand.

``serve --wiring W`` takes ``POST /messages`` ``{"text": "..."}`` (202 with its number; bad input
400) and publishes; ``consume --wiring W --name NAME`` spends ``--work-ms`` on each message, then
appends it to ``<DATA_DIR>/received-<NAME>.csv`` (number, name, pid, time) and acknowledges.
Run: python -m demos.message_queues.pubsub serve --wiring durable --port 8000
     python -m demos.message_queues.pubsub consume --wiring durable --name alice
"""
import argparse
import itertools
import os
import re
import signal
import sys
import threading
import time

from flask import Flask, jsonify, request
from kombu import Exchange, Queue

from .. import json_body, web
from .broker import BrokerUnavailable, connect
from .messaging import Publisher, consume_forever, declare, durable
from .settings import DEFAULT_DATA_DIR

WIRINGS = ("competing", "fanout", "durable")
ROUTING_KEY = "all"
NAME = re.compile(r"[a-z0-9-]{1,32}")
TEXT = re.compile(r"[^\n\r]{0,200}")


def route(wiring: str, prefix: str) -> tuple[Exchange, str]:
    """Where the publisher sends: (exchange, routing key)."""
    if wiring == "competing":
        return Exchange(""), f"{prefix}.work"
    if wiring == "fanout":
        return Exchange(f"{prefix}.fanout", type="fanout", durable=False), ROUTING_KEY
    return Exchange(f"{prefix}.topic", type="direct", durable=True), ROUTING_KEY


def subscription(wiring: str, prefix: str, name: str) -> Queue:
    """The queue a consumer named ``name`` takes from."""
    exchange, key = route(wiring, prefix)
    if wiring == "competing":
        return durable(key)                                    # one queue for all
    if wiring == "fanout":
        return Queue(f"{prefix}.{name}.fanout", exchange, routing_key=key, auto_delete=True, durable=False)
    return Queue(f"{prefix}.{name}", exchange, routing_key=key, durable=True)


def create_app(publish) -> Flask:
    numbers = itertools.count(1)
    lock = threading.Lock()
    published = [0]

    def stats() -> dict:
        with lock:
            return {"published": published[0]}

    app = web.json_app(__name__, stats=stats)

    @app.post("/messages")
    def send():
        try:
            body = json_body.object_of(request.get_data(cache=False), '{"text": "hello"}', 4096)
            text = json_body.text(body, "text", TEXT, "a string of at most 200 characters on one line")
        except json_body.BadJson as problem:
            return jsonify(error=str(problem)), 400
        with lock:
            number = next(numbers)
        try:
            publish({"n": number, "text": text, "sent_at": time.time()})
        except BrokerUnavailable as problem:
            return jsonify(error=f"not sent, try again later: {problem}"), 503
        with lock:
            published[0] += 1
        return jsonify(n=number), 202

    return app


def received(data_dir: str, name: str) -> list[int]:
    """The message numbers consumer ``name`` recorded, in the order received (repeats kept)."""
    path = os.path.join(data_dir, f"received-{name}.csv")
    if not os.path.exists(path):
        return []
    with open(path) as lines:
        return [int(line.split(",")[0]) for line in lines if line.strip()]


# pragma: no mutate block  (the command line, run only as a process by the tests and scenarios)
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    consume = commands.add_parser("consume")
    consume.add_argument("--name", required=True, help="the subscriber's name (its own queue when durable)")
    consume.add_argument("--work-ms", type=float, default=10.0, help="what one message costs to handle")
    for command in (serve, consume):
        command.add_argument("--wiring", choices=WIRINGS, default="durable")
    args = parser.parse_args()
    data_dir = os.environ.get("DATA_DIR", DEFAULT_DATA_DIR)
    os.makedirs(data_dir, exist_ok=True)
    prefix = os.environ.get("QUEUE_PREFIX") or "news"
    broker_url = os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker"
    if args.command == "consume":
        if not NAME.fullmatch(args.name):
            sys.exit("error: --name is 1 to 32 lower-case letters, digits or dashes")
        stopping: list = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        out = open(os.path.join(data_dir, f"received-{args.name}.csv"), "a", buffering=1)

        def handle(message_body, message):
            time.sleep(args.work_ms / 1000)
            out.write(f"{message_body['n']},{args.name},{os.getpid()},{time.time():.6f}\n")
            message.ack()

        try:
            consume_forever(broker_url, float(os.environ.get("BROKER_VISIBILITY_TIMEOUT", 30)),
                            [subscription(args.wiring, prefix, args.name)], handle, stopping)
        except BrokerUnavailable as problem:
            sys.exit(f"error: {problem}")
        return
    try:
        connection = connect(broker_url)
    except BrokerUnavailable as problem:
        sys.exit(f"error: {problem}")
    exchange, key = route(args.wiring, prefix)
    if args.wiring == "competing":
        declare(connection, [durable(key)])
    else:
        with connection.channel() as channel:
            exchange(channel).declare()
    publisher = Publisher(connection)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    import waitress
    print(f"publisher ({args.wiring}) on http://{args.host}:{args.port}; broker {broker_url}", flush=True)
    waitress.serve(create_app(lambda body: publisher.publish(key, body, exchange)), host=args.host, port=args.port,
                   threads=4, connection_limit=2000, backlog=2048, ident="publisher", _quiet=True)


if __name__ == "__main__":
    main()
