"""The registration service's shared app factory; each variant module supplies ``register``.

``POST /register`` with ``{"email": ..., "phone": ...}`` answers 201 ``{"id": ...}``; bad input
gets a 4xx JSON error and writes nothing; a registered address gets 409; a broker that refuses the
jobs gets 503 (the user is rolled back). ``GET /health`` answers
when the service is ready, ``GET /stats`` counts the requests it has seen, and ``GET /audit``
counts users, send attempts and effective sends straight from the database.
"""
import argparse
import json
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from .broker import BrokerUnavailable
from .providers import Provider
from .settings import Settings
from .store import Database, DuplicateEmail, NewUser

MAX_BODY_BYTES = 4096
MAX_EMAIL_CHARS = 254   # RFC 5321's limit on a forward path, less its angle brackets
# Matched whole (re.fullmatch: a `$` would let a final newline through). A local part of at most 64
# characters, a dotted domain; no whitespace, and (checked apart) nothing unprintable: no control
# character, no NUL (PostgreSQL refuses it in text), no lone surrogate (no database can store it).
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
PHONE = re.compile(r"\+?[0-9]{6,15}")   # ASCII digits only: \d would take any script's digits
OBJECT_HINT = "body must be a JSON object like {\"email\": \"a@example.com\", \"phone\": \"+15551234567\"}"


@dataclass
class Services:
    """What a variant's ``register`` works with."""
    database: Database
    email: Provider
    sms: Provider
    jobs: Optional[object] = None   # demos.message_queues.jobs.Jobs, for the queued variant


Register = Callable[[Services, NewUser], int]


class BadRequest(Exception):
    pass


def parse_body(raw: bytes):
    """The body as JSON (UTF-8, -16 or -32), or BadRequest. Nesting deep enough to exhaust Python's
    recursion limit (a 4 KiB body holds 4,000 levels) is bad input too, not a server error."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):   # UnicodeDecodeError is a ValueError
        raise BadRequest(OBJECT_HINT) from None


def parse_user(body) -> NewUser:
    if not isinstance(body, dict):
        raise BadRequest(OBJECT_HINT)
    email, phone = body.get("email"), body.get("phone")
    if (not isinstance(email, str) or len(email) > MAX_EMAIL_CHARS or not email.isprintable()
            or not EMAIL.fullmatch(email)):
        raise BadRequest(f"email must be a string like a@example.com (at most {MAX_EMAIL_CHARS} characters, "
                         "no spaces or control characters)")
    if not isinstance(phone, str) or not PHONE.fullmatch(phone):
        raise BadRequest("phone must be a string of 6 to 15 digits, optionally starting with +")
    return NewUser(email=email.lower(), phone=phone)


def answer_registration(register: Register, services: Services, raw: bytes) -> tuple[dict, int]:
    """``POST /register``'s JSON answer and status for the request body ``raw``."""
    try:
        user = parse_user(parse_body(raw))
        return {"id": register(services, user)}, 201
    except BadRequest as problem:
        return {"error": str(problem)}, 400
    except DuplicateEmail as duplicate:
        return {"error": f"{duplicate} is registered already"}, 409
    except BrokerUnavailable as problem:
        return {"error": f"registration not taken, try again later: {problem}"}, 503


def create_app(register: Register, services: Services) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    statuses: Counter = Counter()   # answers to POST /register, by status code
    lock = threading.Lock()

    def count(status: int) -> None:
        with lock:
            statuses[status] += 1

    def error(status: int, message: str):
        return jsonify(error=message), status

    @app.post("/register")
    def register_user():   # any Content-Type: the body is JSON or it is refused
        answer, status = answer_registration(register, services, request.get_data(cache=False))
        count(status)
        return jsonify(answer), status

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/stats")
    def stats():
        with lock:
            return jsonify(register_requests=sum(statuses.values()),
                           statuses={str(code): n for code, n in statuses.items()})

    @app.get("/audit")
    def audit():
        return jsonify(services.database.audit())

    @app.errorhandler(HTTPException)
    def http_error(problem: HTTPException):
        if request.path == "/register" and problem.code == 413:
            count(413)
            return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        return error(problem.code or 500, problem.description or problem.name)

    @app.errorhandler(Exception)
    def unexpected(problem: Exception):
        app.logger.exception("unexpected error")   # a bug: the JSON answer keeps clients parsing
        if request.path == "/register":
            count(500)
        return error(500, f"internal error: {type(problem).__name__}")

    return app


# pragma: no mutate block  (from here on: wiring and the command line, run only as processes, out of
# the mutation run's reach; the integration tests start them)
def build_services(settings: Settings) -> Services:
    database = Database(settings.database_url, settings.db_write_s)
    return Services(
        database=database,
        email=Provider("email", settings.email_s, database),
        sms=Provider("sms", settings.sms_s, database),
    )


def serve(register: Register, description: str, *, with_jobs: bool = False) -> None:
    """Command line for a variant: ``python -m demos.message_queues.<variant> --port 8000``."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1,
                        help="worker threads serving requests (the article's 'one worker' is 1)")
    args = parser.parse_args()
    settings = Settings.from_env()
    services = build_services(settings)
    if with_jobs:
        from .broker import connect, declare
        from .jobs import Jobs
        try:
            connection = connect(settings.broker_url, settings.visibility_timeout_s)
        except BrokerUnavailable as problem:
            sys.exit(f"error: {problem}")
        jobs = Jobs(connection, settings.queue_prefix)
        declare(connection, jobs.queues)
        services.jobs = jobs
    import waitress
    broker = f"; broker {settings.broker_url}, queues {settings.queue_prefix}.*" if with_jobs else ""
    print(f"serving on http://{args.host}:{args.port} with {args.threads} thread(s); "
          f"database {settings.database_url}{broker}", flush=True)
    # open-loop loads hold hundreds of mostly idle keep-alive connections: allow them
    # (waitress's default of 100 would stop accepting, and the load would silently go closed loop)
    waitress.serve(create_app(register, services), host=args.host, port=args.port,
                   threads=args.threads, connection_limit=2000, backlog=2048,
                   ident="registration", _quiet=True)
