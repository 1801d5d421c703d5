"""Section 2, decoupling (应用解耦): the inventory service, which deducts the stock of each order.

Two doors to one rule. ``POST /deduct`` ``{"key", "product", "quantity"}`` is the direct call the
order service makes while its customer waits (200 deducted, 409 out of stock). With ``--consume`` it
also takes ``order.placed`` events off ``<prefix>.placed`` (written by the order service's outbox)
and answers each on ``<prefix>.results`` with ``deducted`` or ``cancelled`` (out of stock: the order
service tells the customer).

The guarantee: every order is deducted at most once, and the stock never goes negative. The
deduction, its outcome and the key are one transaction (``outcomes`` has one row per key), the
stock has ``CHECK (quantity >= 0)`` and the update only takes what is there; an event delivered
again (a consumer killed before its ack) finds its outcome and sends the same answer again. Every
delivery is kept raw in ``deliveries``, so a duplicate shows in the audit.
Run: python -m demos.message_queues.inventory --port 8001 [--consume]
"""
import argparse
import os
import re
import signal
import threading
import time

from flask import Flask, jsonify, request

from .. import json_body, web
from .broker import connect
from .messaging import PRODUCTS, BadOrder, Publisher, consume_forever, durable, parse_order
from .settings import DEFAULT_DATA_DIR
from .store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (product TEXT PRIMARY KEY, quantity INTEGER NOT NULL CHECK (quantity >= 0));
-- one row per order: what inventory decided, once
CREATE TABLE IF NOT EXISTS outcomes (
    key TEXT PRIMARY KEY, product TEXT NOT NULL, quantity INTEGER NOT NULL, outcome TEXT NOT NULL,
    decided_at DOUBLE PRECISION NOT NULL);
-- every request or event received, duplicates included: the raw audit
CREATE TABLE IF NOT EXISTS deliveries (id {id}, key TEXT NOT NULL, pid INTEGER NOT NULL,
    received_at DOUBLE PRECISION NOT NULL)
"""
KEY = re.compile(r"[a-z]{1,16}:[0-9a-f-]{1,64}")


def stock_setting(text: str) -> dict[str, int]:
    """``"apple=1000,pear=5"`` -> ``{"apple": 1000, "pear": 5}``; products not named get a million."""
    stock = dict.fromkeys(PRODUCTS, 1_000_000)
    for item in filter(None, text.split(",")):
        product, _, quantity = item.partition("=")
        stock[product.strip()] = int(quantity)
    return stock


class Inventory:
    def __init__(self, database: Database, initial: dict[str, int]):
        self.database = database
        with database.transaction() as db:
            for product, quantity in initial.items():
                db.execute("INSERT INTO stock (product, quantity) VALUES (?, ?) ON CONFLICT (product) DO NOTHING",
                           (product, quantity))

    def deduct(self, key: str, product: str, quantity: int) -> str:
        """``deducted`` or ``cancelled`` (out of stock) for the order ``key``: decided once, the same
        answer on every later delivery."""
        with self.database.transaction() as db:
            db.execute("INSERT INTO deliveries (key, pid, received_at) VALUES (?, ?, ?)",
                       (key, os.getpid(), time.time()))
            known = db.execute("SELECT outcome FROM outcomes WHERE key = ?", (key,)).fetchone()
            if known:
                return known[0]
            taken = db.execute("UPDATE stock SET quantity = quantity - ? WHERE product = ? AND quantity >= ?",
                               (quantity, product, quantity)).rowcount == 1
            outcome = "deducted" if taken else "cancelled"
            db.execute("INSERT INTO outcomes (key, product, quantity, outcome, decided_at) VALUES (?, ?, ?, ?, ?)",
                       (key, product, quantity, outcome, time.time()))
            return outcome

    def audit(self) -> dict:
        """Stock left, outcomes by kind, raw deliveries and the keys delivered more than once."""
        with self.database.transaction() as db:
            return {
                "stock": dict(db.execute("SELECT product, quantity FROM stock")),
                "outcomes": dict(db.execute("SELECT outcome, COUNT(*) FROM outcomes GROUP BY outcome")),
                "queued_outcomes": dict(db.execute("SELECT outcome, COUNT(*) FROM outcomes WHERE key LIKE 'queued:%'"
                                                   " GROUP BY outcome")),
                "deducted_units": dict(db.execute(
                    "SELECT product, SUM(quantity) FROM outcomes WHERE outcome = 'deducted' GROUP BY product")),
                "deliveries": db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0],
                "redelivered": db.execute("SELECT COUNT(*) FROM (SELECT key FROM deliveries GROUP BY key"
                                          " HAVING COUNT(*) > 1) AS repeated").fetchone()[0],
            }


def create_app(inventory: Inventory) -> Flask:
    app = web.json_app(__name__)

    @app.post("/deduct")
    def deduct():
        try:
            raw = request.get_data(cache=False)
            key = json_body.text(json_body.object_of(raw, '{"key": "direct:1", ...}', 4096), "key", KEY,
                                 "a key like direct:1")
            product, quantity = parse_order(raw)
        except (json_body.BadJson, BadOrder) as problem:
            return jsonify(error=str(problem)), 400
        outcome = inventory.deduct(key, product, quantity)
        return jsonify(outcome=outcome), 200 if outcome == "deducted" else 409

    @app.get("/audit")
    def audit():
        return jsonify(inventory.audit())

    return app


# pragma: no mutate block  (the command line, run only as a process by the tests and scenarios)
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--consume", action="store_true", help="also deduct the order.placed events")
    parser.add_argument("--hold-before-ack", type=float, default=0.0, metavar="SECONDS",
                        help="fault injection: wait this long after deciding, before the answer and the ack")
    args = parser.parse_args()
    data_dir = os.environ.get("DATA_DIR", DEFAULT_DATA_DIR)
    database = Database(os.environ.get("INVENTORY_DATABASE_URL") or f"sqlite:///{data_dir}/inventory.db",
                        schema=SCHEMA)
    inventory = Inventory(database, stock_setting(os.environ.get("INITIAL_STOCK", "")))
    prefix = os.environ.get("QUEUE_PREFIX") or "shop"
    broker_url = os.environ.get("BROKER_URL") or f"filesystem://{data_dir}/broker"
    stopping: list = []
    if args.consume:
        publisher = Publisher(connect(broker_url))

        def handle(event, message):
            order = event.get("payload") if isinstance(event, dict) else None
            if not isinstance(order, dict) or not isinstance(order.get("order_id"), int) \
                    or order.get("product") not in PRODUCTS or not isinstance(order.get("quantity"), int):
                print(f"rejecting malformed event {event!r}", flush=True)
                message.reject()
                return
            outcome = inventory.deduct(f"queued:{order['order_id']}", order["product"], order["quantity"])
            if args.hold_before_ack:
                print(f"decided {order['order_id']}, holding {args.hold_before_ack} s before the ack", flush=True)
                time.sleep(args.hold_before_ack)
            publisher.publish(f"{prefix}.results", {"order_id": order["order_id"], "outcome": outcome})
            message.ack()

        threading.Thread(target=consume_forever, daemon=True, name="consume",
                         args=(broker_url, float(os.environ.get("BROKER_VISIBILITY_TIMEOUT", 30)), [durable(f"{prefix}.placed")], handle, stopping)).start()
    signal.signal(signal.SIGTERM, lambda *_: (stopping.append(True), os._exit(0)))
    import waitress
    print(f"inventory on http://{args.host}:{args.port}; database {database.url}"
          + (f"; consuming {prefix}.placed from {broker_url}" if args.consume else ""), flush=True)
    waitress.serve(create_app(inventory), host=args.host, port=args.port, threads=8,
                   connection_limit=2000, backlog=2048, ident="inventory", _quiet=True)


if __name__ == "__main__":
    main()
