"""The services' shared parts: input rules, the inventory app factory (each wiring supplies how a
restock is announced), the subscriber manager, the e-mail service, and serving any of them.

Inventory: ``POST /products`` ``{"id": "p1"}`` adds a product; ``POST /products/<id>/stock``
``{"quantity": 5}`` restocks it and answers 201 ``{"restock": ..., "stock": ...}`` once the wiring
has announced it (REST: every e-mail sent; events: the event written with the change). Bad input is
a 4xx with a JSON reason and changes nothing: unknown product 404, a quantity that is not a whole
number from 1 to 1,000,000 400, malformed JSON 400; a wiring that cannot announce answers 503 and
the restock is not made.
Subscriber manager: ``POST /subscriptions`` ``{"product": "p1", "email": "a@example.com"}``,
``GET /subscriptions/<id>`` (404 if unknown), ``DELETE /subscriptions/<id>``,
``GET /products/<id>/subscribers``.
E-mail service: ``POST /send`` ``{"to": ..., "key": ..., "product": ...}`` sends one e-mail through
the sink (skipped if that key was sent already); 502 when the sink refuses or does not answer.
"""
import re
import threading
import time
import uuid
from collections import Counter
from typing import Callable

import requests
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import json_body
from ..message_queues.app import EMAIL, MAX_EMAIL_CHARS
from ..message_queues.store import Database
from .mail import MailFailed, Mailer

PRODUCT = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
RESTOCK = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KEY = re.compile(RESTOCK.pattern + r":[0-9]{1,12}")
MAX_QUANTITY = 1_000_000

INVENTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS inventory_products (
    id TEXT PRIMARY KEY,
    stock BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0   -- one more with every restock: an event's place in the product's order
);
-- a restock that inventory accepted (answered 201), none for one answered with an error
CREATE TABLE IF NOT EXISTS inventory_restocks (
    id TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    requested_at DOUBLE PRECISION NOT NULL,   -- when the request arrived
    created_at DOUBLE PRECISION NOT NULL      -- when the restock was made
)
"""
SUBSCRIBERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id {id},
    product TEXT NOT NULL,
    email TEXT NOT NULL,
    UNIQUE (product, email)
)
"""


class Unavailable(RuntimeError):
    """A service the wiring needs did not do its part: answer 503, make nothing."""


class NotFound(LookupError):
    pass


def product_id(value: str) -> str:
    if not PRODUCT.fullmatch(value):
        raise NotFound(f"no product {value[:50]!r}: ids are lower-case letters, digits and dashes")
    return value


def email_address(body: dict, key: str = "email") -> str:
    value = json_body.text(body, key, EMAIL, f"an e-mail address like a@example.com (at most {MAX_EMAIL_CHARS} "
                                               "characters, no spaces or control characters)")
    if len(value) > MAX_EMAIL_CHARS:
        raise json_body.BadJson(f"{key} must be at most {MAX_EMAIL_CHARS} characters")
    return value.lower()


_local = threading.local()


def request_started() -> float:
    """When the current request arrived (set by the inventory app), else now."""
    return getattr(_local, "request_started", None) or time.time()


def http() -> requests.Session:
    """One keep-alive HTTP session per thread (requests' sessions are not thread-safe)."""
    if getattr(_local, "session", None) is None:
        _local.session = requests.Session()
    return _local.session


class Inventory:
    def __init__(self, database: Database):
        self.database = database

    def add_product(self, product: str) -> bool:
        with self.database.transaction() as db:
            return db.execute("INSERT INTO inventory_products (id, stock) VALUES (?, 0) ON CONFLICT (id) DO NOTHING",
                              (product,)).rowcount == 1

    def exists(self, product: str) -> bool:
        with self.database.transaction() as db:
            return db.execute("SELECT 1 FROM inventory_products WHERE id = ?", (product,)).fetchone() is not None

    def apply(self, db, restock_id: str, product: str, quantity: int) -> int:
        """Inside the caller's transaction: the restock's row and the new stock level."""
        return self.apply_versioned(db, restock_id, product, quantity)[0]

    def apply_versioned(self, db, restock_id: str, product: str, quantity: int) -> tuple[int, int]:
        """``apply``, returning the new stock and the product's new version (1, 2, 3 ... per product)."""
        db.execute("INSERT INTO inventory_restocks (id, product, quantity, requested_at, created_at)"
                   " VALUES (?, ?, ?, ?, ?)", (restock_id, product, quantity, request_started(), time.time()))
        [(stock, version)] = db.execute("UPDATE inventory_products SET stock = stock + ?, version = version + 1"
                                        " WHERE id = ? RETURNING stock, version", (quantity, product)).fetchall()
        return stock, version


# how a wiring makes a restock: (inventory, restock id, product, quantity) -> new stock; raises Unavailable
Restock = Callable[[Inventory, str, str, int], int]


def _json_errors(app: Flask, counted_path: str, statuses: Counter, lock: threading.Lock) -> None:
    def count(status):
        if request.path.startswith(counted_path) and request.method == "POST":
            with lock:
                statuses[status] += 1

    @app.errorhandler(HTTPException)
    def http_error(problem: HTTPException):
        count(problem.code)
        return jsonify(error=problem.description or problem.name), problem.code

    @app.errorhandler(Exception)
    def unexpected(problem: Exception):
        app.logger.exception("unexpected error")
        count(500)
        return jsonify(error=f"internal error: {type(problem).__name__}"), 500

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/stats")
    def stats():
        with lock:
            return jsonify(requests=sum(statuses.values()), statuses={str(k): v for k, v in statuses.items()})


def answer(statuses: Counter, lock: threading.Lock, work: Callable[[], tuple[dict, int]]):
    """Run ``work`` and turn the chapter's errors into JSON 4xx/503 answers; count the status."""
    try:
        body, status = work()
    except json_body.BadJson as problem:
        body, status = {"error": str(problem)}, 400
    except NotFound as problem:
        body, status = {"error": str(problem)}, 404
    except Unavailable as problem:
        body, status = {"error": f"not done, try again later: {problem}"}, 503
    with lock:
        statuses[status] += 1
    return jsonify(body), status


def create_inventory(restock: Restock, inventory: Inventory, wiring: str) -> Flask:
    app = Flask("inventory")
    app.config["MAX_CONTENT_LENGTH"] = json_body.MAX_BODY_BYTES
    statuses, lock = Counter(), threading.Lock()
    _json_errors(app, "/products/", statuses, lock)

    @app.post("/products")
    def add_product():
        def work():
            body = json_body.object_of(request.get_data(cache=False), '{"id": "p1"}')
            product = json_body.text(body, "id", PRODUCT, "lower-case letters, digits and dashes (at most 40)")
            return ({"id": product}, 201) if inventory.add_product(product) else ({"error": f"{product} exists"}, 409)
        return answer(Counter(), threading.Lock(), work)

    @app.post("/products/<product>/stock")
    def restock_product(product: str):
        started = time.time()

        def work():
            body = json_body.object_of(request.get_data(cache=False), '{"quantity": 5}')
            quantity = json_body.whole(body, "quantity", 1, MAX_QUANTITY)
            if not inventory.exists(product_id(product)):
                raise NotFound(f"no product {product!r}")
            restock_id = str(uuid.uuid4())
            _local.request_started = started
            stock = restock(inventory, restock_id, product, quantity)
            return {"restock": restock_id, "product": product, "stock": stock, "wiring": wiring}, 201
        return answer(statuses, lock, work)

    return app


def create_subscribers(database: Database) -> Flask:
    app = Flask("subscribers")
    app.config["MAX_CONTENT_LENGTH"] = json_body.MAX_BODY_BYTES
    statuses, lock = Counter(), threading.Lock()
    _json_errors(app, "/subscriptions", statuses, lock)

    @app.post("/subscriptions")
    def subscribe():
        def work():
            body = json_body.object_of(request.get_data(cache=False), '{"product": "p1", "email": "a@example.com"}')
            product = json_body.text(body, "product", PRODUCT, "a product id: lower-case letters, digits and dashes")
            address = email_address(body)
            with database.transaction() as db:
                db.execute("INSERT INTO subscriptions (product, email) VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (product, address))
                [(number,)] = db.execute("SELECT id FROM subscriptions WHERE product = ? AND email = ?",
                                         (product, address)).fetchall()
            return {"id": number, "product": product, "email": address}, 201
        return answer(statuses, lock, work)

    def one(number: str):
        if not number.isascii() or not number.isdigit() or len(number) > 12:
            raise NotFound(f"no subscriber {number[:20]!r}")
        with database.transaction() as db:
            row = db.execute("SELECT id, product, email FROM subscriptions WHERE id = ?", (int(number),)).fetchone()
        if row is None:
            raise NotFound(f"no subscriber {number}")
        return row

    @app.get("/subscriptions/<number>")
    def show(number: str):
        def work():
            found = one(number)
            return dict(zip(("id", "product", "email"), found)), 200
        return answer(Counter(), threading.Lock(), work)

    @app.delete("/subscriptions/<number>")
    def unsubscribe(number: str):
        def work():
            found = one(number)
            with database.transaction() as db:
                db.execute("DELETE FROM subscriptions WHERE id = ?", (found[0],))
            return {"deleted": found[0]}, 200
        return answer(Counter(), threading.Lock(), work)

    @app.get("/products/<product>/subscribers")
    def subscribers(product: str):
        with database.transaction() as db:
            rows = db.execute("SELECT id, email FROM subscriptions WHERE product = ? ORDER BY id",
                              (product,)).fetchall()
        return jsonify(subscribers=[{"id": number, "email": address} for number, address in rows])

    return app


def create_email_service(mailer: Mailer) -> Flask:
    app = Flask("email")
    app.config["MAX_CONTENT_LENGTH"] = json_body.MAX_BODY_BYTES
    statuses, lock = Counter(), threading.Lock()
    _json_errors(app, "/send", statuses, lock)

    @app.post("/send")
    def send():
        body = None

        def work():
            nonlocal body
            body = json_body.object_of(request.get_data(cache=False),
                                       '{"to": "a@example.com", "key": "<restock>:<subscriber>", "product": "p1"}')
            to = email_address(body, "to")
            key = json_body.text(body, "key", KEY, "<restock uuid>:<subscriber id>")
            product = json_body.text(body, "product", PRODUCT, "a product id")
            try:
                return {"key": key, "sent": mailer.send(to, key, product)}, 200
            except MailFailed as failed:
                return {"error": str(failed)}, 502
        return answer(statuses, lock, work)

    return app


def subscribers_of(subscribers_url: str, product: str, timeout_s: float = 5.0) -> list[dict]:
    """The subscriber manager's list for ``product``; Unavailable when it does not answer."""
    try:
        response = http().get(f"{subscribers_url}/products/{product}/subscribers", timeout=timeout_s)
        response.raise_for_status()
        return response.json()["subscribers"]
    except (requests.RequestException, ValueError, KeyError) as error:
        raise Unavailable(f"subscriber manager: {error}") from error


def serve(app: Flask, port: int, threads: int, what: str) -> None:
    import waitress
    print(f"{what} serving on http://127.0.0.1:{port} with {threads} threads", flush=True)
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, connection_limit=2000, backlog=2048,
                   ident=what, _quiet=True)
