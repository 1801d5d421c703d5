"""The application server behind the balancers: it says who served each request.

``GET /`` answers ``{"backend": NAME}`` (``?delay_ms=N`` holds the answer N ms, at most 5,000, so
that requests are in flight when a backend dies); ``POST /order`` takes a JSON object and answers
201 with the backend's name and its order count; ``GET /health`` answers when ready; ``GET /stats``
counts requests by path and the requests in flight now. Bad input gets a 4xx JSON error.

Run: python -m demos.high_availability.backend --name backend-1 --port 8001
"""
import argparse
import threading
import time
from collections import Counter

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

MAX_DELAY_MS = 5000
MAX_BODY_BYTES = 4096


def create_app(name: str) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    lock = threading.Lock()
    counts: Counter = Counter()
    state = {"in_flight": 0, "orders": 0}

    def error(status: int, message: str):
        return jsonify(error=message, backend=name), status

    @app.before_request
    def enter():
        with lock:
            counts[request.path] += 1
            state["in_flight"] += 1

    @app.teardown_request
    def leave(_exc):
        with lock:
            state["in_flight"] -= 1

    @app.get("/")
    def hello():
        raw = request.args.get("delay_ms", "0")
        if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_DELAY_MS:
            return error(400, f"delay_ms must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}")
        time.sleep(int(raw) / 1000)
        return jsonify(backend=name)

    @app.post("/order")
    def order():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return error(400, 'body must be a JSON object, e.g. {"item": "book"}')
        raw = str(body.get("delay_ms", 0))
        if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_DELAY_MS:
            return error(400, f"delay_ms must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}")
        time.sleep(int(raw) / 1000)
        with lock:
            state["orders"] += 1
            number = state["orders"]
        return jsonify(backend=name, order=number), 201

    @app.get("/health")
    def health():
        return jsonify(status="ok", backend=name)

    @app.get("/stats")
    def stats():
        with lock:
            return jsonify(backend=name, requests=dict(counts), in_flight=state["in_flight"] - 1,
                           orders=state["orders"])

    @app.errorhandler(HTTPException)
    def http_error(problem: HTTPException):
        return error(problem.code or 500, problem.description or problem.name)

    return app


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--name", default="backend-1", help="what it answers as (default backend-1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=64, help="requests served at once (default 64)")
    args = parser.parse_args(argv)
    import waitress
    print(f"{args.name} serving on http://{args.host}:{args.port} with {args.threads} threads", flush=True)
    waitress.serve(create_app(args.name), host=args.host, port=args.port, threads=args.threads,
                   connection_limit=2000, backlog=2048, ident=args.name, _quiet=True)


if __name__ == "__main__":
    main()
