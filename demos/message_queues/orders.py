"""Section 2, decoupling (应用解耦): the order service, wired to inventory in one of two ways.

- ``--wiring direct``: ``POST /orders`` calls inventory's ``/deduct`` while the customer waits; the
  order is stored (``deducted``) only when inventory said yes. Inventory down: a fast 503, nothing
  stored, the sale lost.
- ``--wiring queued``: the order and its ``order.placed`` event are written in one transaction
  (the outbox, demos/outbox.py) and the customer gets 201 ``confirmed`` at once; a relay thread
  publishes the outbox to ``<prefix>.placed``; inventory deducts when it can and answers on
  ``<prefix>.results``, which a second thread applies (``deducted``, or ``cancelled`` when out of
  stock: the customer reads it at ``GET /orders/<id>``). Inventory down: orders still confirmed.

Bad input (malformed JSON, an unknown product, a quantity that is not 1 to 100) gets 400 and
stores nothing. ``GET /stats`` counts orders by status and the outbox not yet published.
Run: python -m demos.message_queues.orders --wiring queued --port 8000 --inventory-url http://127.0.0.1:8001
"""
import argparse
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid

from flask import Flask, jsonify, request

from .. import outbox, web
from .broker import BrokerUnavailable, connect
from .messaging import BadOrder, Publisher, consume_forever, declare, durable, parse_order
from .settings import DEFAULT_DATA_DIR
from .store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (id {id}, product TEXT NOT NULL, quantity INTEGER NOT NULL,
    status TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, resolved_at DOUBLE PRECISION)
"""
CALL_TIMEOUT_S = 0.5   # the direct call's bound: a hung inventory must not hold the customer longer


class InventoryDown(Exception):
    pass


def call_inventory(inventory_url: str, key: str, product: str, quantity: int) -> bool:
    """Inventory's answer to the direct call: True deducted, False out of stock; InventoryDown else."""
    body = json.dumps({"key": key, "product": product, "quantity": quantity}).encode()
    call = urllib.request.Request(f"{inventory_url}/deduct", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(call, timeout=CALL_TIMEOUT_S):
            return True
    except urllib.error.HTTPError as answer:
        if answer.code == 409:
            return False
        raise InventoryDown(f"inventory answered {answer.code}") from None
    except OSError as error:   # refused, reset, timed out
        raise InventoryDown(f"inventory not reachable: {error}") from None


class Orders:
    def __init__(self, database: Database, wiring: str, inventory_url: str = ""):
        self.database, self.wiring, self.inventory_url = database, wiring, inventory_url
        with database.transaction() as db:
            outbox.create_table(db, database.dialect.id)

    def place(self, product: str, quantity: int) -> tuple[dict, int]:
        if self.wiring == "direct":
            try:
                deducted = call_inventory(self.inventory_url, f"direct:{uuid.uuid4()}", product, quantity)
            except InventoryDown as problem:
                return {"error": f"order not taken, try again later: {problem}"}, 503
            if not deducted:
                return {"error": f"{product} is out of stock"}, 409
            return {"id": self._store(product, quantity, "deducted"), "status": "deducted"}, 201
        return {"id": self._store(product, quantity, "confirmed"), "status": "confirmed"}, 201

    def _store(self, product: str, quantity: int, status: str) -> int:
        now = time.time()
        with self.database.transaction() as db:
            [(order_id,)] = db.execute(
                "INSERT INTO orders (product, quantity, status, created_at, resolved_at) VALUES (?, ?, ?, ?, ?)"
                " RETURNING id", (product, quantity, status, now, now if status == "deducted" else None)).fetchall()
            if status == "confirmed":
                outbox.add(db, "order.placed", {"order_id": order_id, "product": product, "quantity": quantity})
            return order_id

    def resolve(self, order_id: int, outcome: str) -> None:
        """Inventory's answer (``deducted`` or ``cancelled``), applied once: a repeat changes nothing."""
        with self.database.transaction() as db:
            db.execute("UPDATE orders SET status = ?, resolved_at = ? WHERE id = ? AND status = 'confirmed'",
                       (outcome, time.time(), order_id))

    def status(self, order_id: int):
        with self.database.transaction() as db:
            return db.execute("SELECT status FROM orders WHERE id = ?", (order_id,)).fetchone()

    def stats(self) -> dict:
        with self.database.transaction() as db:
            return {"orders": dict(db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status")),
                    "outbox_pending": outbox.pending(db)}

    def timeline(self) -> list[tuple]:
        with self.database.transaction() as db:
            return db.execute("SELECT id, product, quantity, status, created_at, resolved_at FROM orders"
                              " ORDER BY id").fetchall()


def create_app(orders: Orders) -> Flask:
    app = web.json_app(__name__, stats=orders.stats)

    @app.post("/orders")
    def place():
        try:
            product, quantity = parse_order(request.get_data(cache=False))
        except BadOrder as problem:
            return jsonify(error=str(problem)), 400
        answer, status = orders.place(product, quantity)
        return jsonify(answer), status

    @app.get("/orders/<int:order_id>")
    def show(order_id: int):
        found = orders.status(order_id)
        if found is None:
            return jsonify(error=f"no order {order_id}"), 404
        return jsonify(id=order_id, status=found[0])

    return app


# pragma: no mutate block  (the command line, run only as a process by the tests and scenarios)
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--wiring", choices=("direct", "queued"), default="queued")
    parser.add_argument("--inventory-url", default="http://127.0.0.1:8001")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    data_dir = os.environ.get("DATA_DIR", DEFAULT_DATA_DIR)
    database = Database(os.environ.get("ORDERS_DATABASE_URL") or f"sqlite:///{data_dir}/orders-{args.wiring}.db",
                        schema=SCHEMA)
    orders = Orders(database, args.wiring, args.inventory_url.rstrip("/"))
    stopping: list = []
    if args.wiring == "queued":
        prefix = os.environ.get("QUEUE_PREFIX") or "shop"
        broker_url = os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker"
        try:
            connection = connect(broker_url)
        except BrokerUnavailable as problem:
            raise SystemExit(f"error: {problem}")
        declare(connection, [durable(f"{prefix}.placed"), durable(f"{prefix}.results")])
        publisher = Publisher(connection)
        relay = outbox.Relay(database.transaction,
                             lambda event_id, topic, payload: publisher.publish(
                                 f"{prefix}.placed", {"event_id": event_id, "topic": topic, "payload": payload}),
                             poll_interval_s=0.02)
        stop = threading.Event()
        threading.Thread(target=relay.run, args=(stop, lambda error: print(f"relay: {error}", flush=True)),
                         daemon=True, name="relay").start()

        def apply(answer, message):
            if isinstance(answer, dict) and isinstance(answer.get("order_id"), int) \
                    and answer.get("outcome") in ("deducted", "cancelled"):
                orders.resolve(answer["order_id"], answer["outcome"])
            message.ack()

        threading.Thread(target=consume_forever, daemon=True, name="results",
                         args=(broker_url, 30.0, [durable(f"{prefix}.results")], apply, stopping)).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    import waitress
    print(f"orders ({args.wiring}) on http://{args.host}:{args.port}; database {database.url}", flush=True)
    waitress.serve(create_app(orders), host=args.host, port=args.port, threads=args.threads,
                   connection_limit=2000, backlog=2048, ident="orders", _quiet=True)


if __name__ == "__main__":
    main()
