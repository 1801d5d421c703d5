"""The coupon service's shared app factory; each strategy module (naive, atomic, reservation)
supplies its ``Strategy``: how a user claims a coupon. Everything else is here, the same for all.

    POST /batches                 {"name", "stock", "rules": [...], "valid_from"?, "valid_until"?} -> 201 {"id"}
    GET  /batches/<id>            the batch, with how many coupons were issued
    POST /batches/<id>/claim      {"user": "u-1"} -> 201 {"code"} (new) or 200 (theirs already: a retry)
    POST /coupons/<code>/redeem   {"user", "order_id", "amount_cents", "first_order"?}
                                  -> 201 {"discount_cents", "pay_cents"} (used now) or 200 (same order again)
    POST /batches/<id>/bulk       {"users": [...]} -> 202 {"job"}: issue through the queue (bulk.py)
    GET  /bulk/<job>              the bulk job's progress
    GET  /health, /stats, /audit  ready; requests, statuses and where the time went; raw-row audit

Bad input gets a 4xx JSON ``{"error": reason}`` and changes nothing; a store that is down gets a
fast 503 (retry later).
"""
import argparse
import json
import math
import re
import socket
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from demos.brokers import BrokerUnavailable

from . import registry
from .settings import Settings
from .store import Batch, Conflict, Database, DatabaseUnavailable, Forbidden, Gone, NotFound, redacted

MAX_BODY_BYTES = 4096
MAX_BULK_BODY_BYTES = 4 * 1024 * 1024
MAX_BULK_USERS = 100_000
MAX_ID = 2**62                      # larger ids exist nowhere (and would overflow SQLite's integers)
NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")   # user and order ids
CODE = re.compile(r"[0-9a-f]{16}")
DEFAULT_VALIDITY_S = 30 * 24 * 3600


class BadRequest(Exception):
    """The request itself is wrong (400); the message says how to fix it."""


class Unavailable(Exception):
    """A store the strategy needs does not answer (503): nothing was taken, retry later."""


class Timings:
    """Seconds spent per part (``db``, ``redis``, ``broker``, ``handler``), summed over requests:
    where a strategy's time goes, so the reader knows which part to scale."""

    def __init__(self):
        self.lock, self.seconds, self.calls = threading.Lock(), Counter(), Counter()

    @contextmanager
    def spent(self, part: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self.lock:
                self.seconds[part] += elapsed
                self.calls[part] += 1

    def report(self) -> dict:
        with self.lock:
            return {part: {"seconds": round(self.seconds[part], 4), "calls": self.calls[part]} for part in self.seconds}


@dataclass
class Services:
    """What a strategy works with."""
    settings: Settings
    database: Database
    timings: Timings = field(default_factory=Timings)
    reservations: Optional[object] = None    # reservation.Reservations (Redis)
    queue: Optional[object] = None           # queue.Queue (kombu): coupon rows and bulk jobs


@dataclass
class Strategy:
    """A claim strategy: ``claim(services, batch, user) -> (code, new)`` and what it needs."""
    name: str
    claim: Callable[[Services, Batch, str], tuple[str, bool]]
    one_per_user: bool = True                                   # the unique index (batch, user)
    setup: Callable[[Services], None] = lambda services: None   # connect to Redis, the broker
    batch_created: Callable[[Services, Batch], None] = lambda services, batch: None


# --- input ------------------------------------------------------------------------------------

def read_json() -> dict:
    """The request's JSON object; BadRequest for anything else (never a 500, however nested)."""
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        raise BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def text(body: dict, key: str, pattern: re.Pattern = NAME) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(f"{key} must be a string of 1 to 64 letters, digits or _.:@-")
    return value


def whole(body: dict, key: str, low: int, high: int, default: Optional[int] = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key} must be a whole number from {low:,} to {high:,}")
    return value


def seconds(body: dict, key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value < 1e11:
        raise BadRequest(f"{key} must be a time in epoch seconds")
    return float(value)


def parse_batch(body: dict) -> dict:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100 or not name.isprintable() \
            or not name.encode("utf-8", "surrogatepass").decode("utf-8", "replace") == name:
        raise BadRequest("name must be 1 to 100 printable characters")
    now = time.time()
    valid_from = seconds(body, "valid_from", now)
    valid_until = seconds(body, "valid_until", valid_from + DEFAULT_VALIDITY_S)
    if valid_until <= valid_from:
        raise BadRequest("valid_until must come after valid_from")
    try:
        registry.build(body.get("rules"))
    except ValueError as problem:
        raise BadRequest(str(problem)) from None
    return dict(name=name, stock=whole(body, "stock", 1, 10**9), rules=body["rules"],
                valid_from=valid_from, valid_until=valid_until)


def parse_order(body: dict) -> registry.Order:
    first = body.get("first_order", False)
    if not isinstance(first, bool):
        raise BadRequest("first_order must be true or false")
    return registry.Order(order_id=text(body, "order_id"), user_id=text(body, "user"),
                          amount_cents=whole(body, "amount_cents", 0, 10**9), first_order=first)


def parse_users(body: dict) -> list[str]:
    users = body.get("users")
    if not isinstance(users, list) or not 1 <= len(users) <= MAX_BULK_USERS:
        raise BadRequest(f"users must be a list of 1 to {MAX_BULK_USERS:,} user ids")
    if not all(isinstance(user, str) and NAME.fullmatch(user) for user in users):
        raise BadRequest("every user must be a string of 1 to 64 letters, digits or _.:@-")
    return list(dict.fromkeys(users))   # each user once: the job issues exactly one per user


# --- the app ----------------------------------------------------------------------------------

STATUS = {BadRequest: 400, Forbidden: 403, NotFound: 404, Conflict: 409, Gone: 410,
          registry.NotApplicable: 422, Unavailable: 503, BrokerUnavailable: 503, DatabaseUnavailable: 503}


def create_app(strategy: Strategy, services: Services) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    statuses: Counter = Counter()   # (endpoint, status) -> answers
    lock = threading.Lock()
    batches: dict[int, Batch] = {}   # batches never change once created: kept in memory
    rules: dict[int, list] = {}

    def batch(batch_id: int) -> Batch:
        if batch_id > MAX_ID:
            raise NotFound(f"no batch {batch_id}")
        if batch_id not in batches:
            with services.timings.spent("db"):
                batches[batch_id] = services.database.batch(batch_id)
        return batches[batch_id]

    def batch_rules(batch_id: int) -> list:
        if batch_id not in rules:
            rules[batch_id] = registry.build(batch(batch_id).rules)
        return rules[batch_id]

    def answer(endpoint: str, work: Callable[[], tuple]):
        with services.timings.spent("handler"):
            try:
                payload, status = work()
            except tuple(STATUS) as problem:
                status = next(code for kind, code in STATUS.items() if isinstance(problem, kind))
                payload = {"error": str(problem) or type(problem).__name__}
        with lock:
            statuses[(endpoint, status)] += 1
        return jsonify(payload), status

    @app.before_request
    def bulk_bodies_are_larger():
        if request.endpoint == "bulk":
            request.max_content_length = MAX_BULK_BODY_BYTES

    @app.post("/batches")
    def create_batch():
        def work():
            fields = parse_batch(read_json())
            with services.timings.spent("db"):
                batch_id = services.database.create_batch(**fields)
            strategy.batch_created(services, batch(batch_id))
            return {"id": batch_id}, 201
        return answer("create", work)

    @app.get("/batches/<int:batch_id>")
    def show_batch(batch_id: int):
        def work():
            found = batch(batch_id)
            return {**found.__dict__, "issued": services.database.issued(batch_id)}, 200
        return answer("show", work)

    @app.post("/batches/<int:batch_id>/claim")
    def claim(batch_id: int):
        def work():
            user = text(read_json(), "user")
            found = batch(batch_id)
            found.check_open()
            code, new = strategy.claim(services, found, user)
            return {"code": code, "batch_id": batch_id, "user": user}, 201 if new else 200
        return answer("claim", work)

    @app.post("/coupons/<code>/redeem")
    def redeem(code: str):
        def work():
            order = parse_order(read_json())
            if not CODE.fullmatch(code):
                raise NotFound(f"no coupon {code[:40]!r}")

            def discount(batch_id: int) -> int:
                batch(batch_id).check_open()
                return registry.discount(batch_rules(batch_id), order)

            with services.timings.spent("db"):
                cents_off, new = services.database.redeem(code, order.user_id, order.order_id,
                                                          order.amount_cents, discount)
            return {"code": code, "order_id": order.order_id, "discount_cents": cents_off,
                    "pay_cents": order.amount_cents - cents_off}, 201 if new else 200
        return answer("redeem", work)

    @app.post("/batches/<int:batch_id>/bulk")
    def bulk(batch_id: int):
        def work():
            users = parse_users(read_json())
            found = batch(batch_id)
            found.check_open()
            if services.queue is None:
                raise Unavailable("bulk issuance needs the queue: start the service with --bulk")
            job_id = services.database.create_bulk_job(batch_id, len(users))
            services.queue.publish_bulk(job_id, batch_id, users)
            return {"job": job_id, "users": len(users)}, 202
        return answer("bulk", work)

    @app.get("/bulk/<int:job_id>")
    def bulk_job(job_id: int):
        def work():
            if job_id > MAX_ID:
                raise NotFound(f"no bulk job {job_id}")
            return services.database.bulk_job(job_id), 200
        return answer("bulk_job", work)

    @app.get("/health")
    def health():
        return jsonify(status="ok", strategy=strategy.name)

    @app.get("/stats")
    def stats():
        with lock:
            counted = {f"{endpoint} {status}": n for (endpoint, status), n in sorted(statuses.items())}
        return jsonify(strategy=strategy.name, statuses=counted, timings=services.timings.report(),
                       database=services.database.kind)

    @app.get("/audit")
    def audit():
        report = services.database.audit()
        if services.reservations is not None:
            report["reserved"] = services.reservations.reserved(services.database.batch_ids())
        return jsonify(report)

    @app.errorhandler(HTTPException)
    def http_error(problem: HTTPException):
        if problem.code == 413:
            return jsonify(error=f"body larger than {request.max_content_length} bytes"), 413
        return jsonify(error=problem.description or problem.name), problem.code or 500

    @app.errorhandler(Exception)
    def unexpected(problem: Exception):
        app.logger.exception("unexpected error")   # a bug: still a JSON answer
        return jsonify(error=f"internal error: {type(problem).__name__}"), 500

    return app


def build(strategy: Strategy, settings: Optional[Settings] = None) -> tuple[Flask, Services]:
    """The app and its services for ``strategy`` from the environment (tests call this in-process)."""
    settings = settings or Settings.from_env()
    services = Services(settings, Database(settings.database_url, one_per_user=strategy.one_per_user))
    strategy.setup(services)
    return create_app(strategy, services), services


def serve(strategy: Strategy, description: str) -> None:
    """Command line for a strategy: ``python -m demos.coupon_system.<strategy> --port 8000``."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=8, help="threads serving requests (at least 8)")
    parser.add_argument("--bulk", action="store_true", help="accept bulk issuances (publishes to the queue)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="share the port with other processes started the same way (SO_REUSEPORT): "
                             "the kernel spreads connections over them, stateless service instances")
    args = parser.parse_args()
    try:
        app, services = build(strategy)
        if args.bulk and services.queue is None:
            from .queue import Queue
            services.queue = Queue.connect(services.settings)
    except (BrokerUnavailable, Unavailable) as problem:
        sys.exit(f"error: {problem}")
    import waitress
    settings = services.settings
    print(f"serving the {strategy.name} strategy on http://{args.host}:{args.port} with {args.threads} threads; "
          f"database {redacted(settings.database_url)}"
          + (f"; race window {settings.race_window_s * 1000:g} ms" if strategy.name == "naive" else "")
          + (f"; redis {settings.redis_url}" if services.reservations else "")
          + (f"; broker {settings.broker_url}" if services.queue else ""), flush=True)
    where = {"host": args.host, "port": args.port}
    if args.reuse_port:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((args.host, args.port))
        where = {"sockets": [listener]}
    waitress.serve(app, threads=args.threads, connection_limit=4000, backlog=2048, channel_timeout=30,
                   ident="coupons", _quiet=True, **where)
