"""The registration service's shared app factory; each variant module supplies ``register``.

``POST /register`` with ``{"email": ..., "phone": ...}`` answers 201 ``{"id": ...}``; bad input
gets a 4xx JSON error and writes nothing; a registered address gets 409. ``GET /health`` answers
when the service is ready, ``GET /stats`` counts the requests it has seen, and ``GET /audit``
counts users, send attempts and effective sends straight from the database.
"""
import argparse
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
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE = re.compile(r"^\+?[0-9]{6,15}$")


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


def parse_user(body) -> NewUser:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object like {\"email\": \"a@example.com\", \"phone\": \"+15551234567\"}")
    email, phone = body.get("email"), body.get("phone")
    if not isinstance(email, str) or len(email) > 254 or not EMAIL.match(email):
        raise BadRequest("email must be a string like a@example.com (at most 254 characters)")
    if not isinstance(phone, str) or not PHONE.match(phone):
        raise BadRequest("phone must be a string of 6 to 15 digits, optionally starting with +")
    return NewUser(email=email.lower(), phone=phone)


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
    def register_user():
        try:
            user = parse_user(request.get_json(force=True, silent=True))
            user_id = register(services, user)
            response = jsonify(id=user_id), 201
        except BadRequest as problem:
            response = error(400, str(problem))
        except DuplicateEmail as duplicate:
            response = error(409, f"{duplicate} is registered already")
        except BrokerUnavailable as problem:
            response = error(503, f"registration not taken, try again later: {problem}")
        count(response[1])
        return response

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
        declare(connection)
        services.jobs = Jobs(connection)
    import waitress
    print(f"serving on http://{args.host}:{args.port} with {args.threads} thread(s); "
          f"database {settings.database_url}" + (f"; broker {settings.broker_url}" if with_jobs else ""),
          flush=True)
    # open-loop loads hold hundreds of mostly idle keep-alive connections: allow them
    # (waitress's default of 100 would stop accepting, and the load would silently go closed loop)
    waitress.serve(create_app(register, services), host=args.host, port=args.port,
                   threads=args.threads, connection_limit=2000, backlog=2048,
                   ident="registration", _quiet=True)
