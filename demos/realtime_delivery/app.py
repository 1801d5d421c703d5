"""The HTTP side: one Flask app; each HTTP transport adds its routes from its own module.

Routes of the app itself:
- ``GET /health``; ``GET /stats`` (counters, the process's CPU seconds and resident bytes);
  ``GET /api/config`` (where the WebSocket listens);
- ``GET /`` the chat page (``static/chat.html`` or ``static/index.html``, else a placeholder);
- ``POST /api/conversations`` ``{"id": "general"}`` → 201, or 200 if it exists;
- ``POST /api/conversations/<cid>/messages`` ``{"sender", "body", "client_ts"?}`` → 201
  ``{"seq", "sent_at"}`` once the message is stored.

Every error is a JSON ``{"error": ...}`` with a 4xx status: 400 bad input, 404 unknown
conversation, 413 a body over 4 KiB.
"""
import os
import resource

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from . import inputs, long_polling, short_polling, sse
from .hub import Hub
from .settings import Settings
from .store import AfterBeyondLast, UnknownConversation

MAX_REQUEST_BYTES = 64 * 1024
PAGES = ("chat.html", "index.html")   # the first that exists in static/ is served at /
PLACEHOLDER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Real-time delivery</title></head>
<body><h1>Real-time delivery</h1>
<p>The chat page is not written yet. The API: <code>POST /api/conversations</code>,
<code>POST /api/conversations/&lt;id&gt;/messages</code>, short poll <code>GET .../messages?after=N</code>,
long poll <code>GET .../poll?after=N</code>, SSE <code>GET .../events?after=N</code>, WebSocket on the
port given by <a href="/api/config">/api/config</a>; counters at <a href="/stats">/stats</a>.</p>
</body></html>
"""


def process_usage() -> dict:
    """This process's CPU seconds and resident memory, so a load can divide them by deliveries
    or clients held while it runs (the harness samples ``/stats`` once a second)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:   # current resident set (Linux); elsewhere the peak, which is what getrusage knows
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = usage.ru_maxrss * 1024
    return {"process.pid": os.getpid(), "process.cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
            "process.rss_bytes": rss}


def create_app(hub: Hub, settings: Settings, ws_port: int) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    stats = hub.stats

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/")
    def page():
        for name in PAGES:
            if os.path.exists(os.path.join(app.static_folder, name)):
                return send_from_directory(app.static_folder, name)
        return Response(PLACEHOLDER_PAGE, mimetype="text/html")

    @app.get("/api/config")
    def config():
        return jsonify(ws_port=ws_port, ws_path="/ws/{conversation}",
                       long_poll_timeout_s=settings.long_poll_timeout_s,
                       window_length=settings.window_length, window_age_s=settings.window_age_s,
                       max_body_bytes=inputs.MAX_BODY_BYTES)

    @app.get("/stats")
    def stats_view():
        return jsonify({**dict(sorted(stats.items())), **process_usage()})

    @app.post("/api/conversations")
    def create_conversation():
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise inputs.BadInput('send a JSON object like {"id": "general"}')
        conversation = inputs.conversation_id(body.get("id"))
        created = hub.create(conversation)
        return jsonify(id=conversation, created=created), 201 if created else 200

    @app.post("/api/conversations/<conversation>/messages")
    def send_message(conversation: str):
        hub.channel(conversation)   # 404 before looking at the body
        new = inputs.new_message(request.get_json(force=True, silent=True))
        message = hub.send(conversation, new.sender, new.body, new.client_ts)
        stats["sends.http"] += 1
        return jsonify(seq=message.seq, sent_at=message.sent_at), 201

    short_polling.register(app, hub, settings)
    long_polling.register(app, hub, settings)
    sse.register(app, hub, settings)

    def error(status: int, message: str):
        stats[f"errors.{status}"] += 1
        return jsonify(error=message), status

    @app.errorhandler(inputs.BadInput)
    def bad_input(problem: inputs.BadInput):
        return error(problem.status, str(problem))

    @app.errorhandler(UnknownConversation)
    def unknown_conversation(problem: UnknownConversation):
        return error(404, f"no conversation {problem.args[0]!r}: create it with POST /api/conversations")

    @app.errorhandler(AfterBeyondLast)
    def after_beyond_last(problem: AfterBeyondLast):
        return error(400, str(problem))

    @app.errorhandler(HTTPException)
    def http_error(problem: HTTPException):
        if problem.code == 413:
            return error(413, f"request larger than {MAX_REQUEST_BYTES} bytes")
        return error(problem.code or 500, problem.description or problem.name)

    return app
