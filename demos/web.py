"""The Flask app every small service of a chapter starts from.

    app = web.json_app(__name__, stats=lambda: {"published": published[0]})

gives ``GET /health`` (``{"status": "ok"}``: the harness's readiness probe), ``GET /stats`` when a
``stats()`` is given (what the harness samples during a load), and every HTTP error as JSON
``{"error": ...}``: a body over ``max_body_bytes`` gets a 413 that names the bound, an unknown
path a 404, a wrong method a 405, so a client that parses JSON never meets Flask's HTML pages.
"""
from typing import Callable, Optional

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

MAX_BODY_BYTES = 4096


def json_app(name: str, *, max_body_bytes: int = MAX_BODY_BYTES,
             stats: Optional[Callable[[], dict]] = None) -> Flask:
    app = Flask(name)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    if stats is not None:
        @app.get("/stats")
        def show_stats():
            return jsonify(stats())

    @app.errorhandler(HTTPException)
    def http_error(problem: HTTPException):
        if problem.code == 413:
            return jsonify(error=f"body larger than {max_body_bytes} bytes"), 413
        return jsonify(error=problem.description or problem.name), problem.code or 500

    return app
