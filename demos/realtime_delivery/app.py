"""The HTTP side: one Flask app; each HTTP transport adds its routes from its own module.

Routes of the app itself:
- ``GET /health``; ``GET /stats`` (counters, the process's CPU seconds and resident bytes);
  ``GET /api/config`` (where the WebSocket listens);
- ``GET /`` the chat page (``static/chat.html`` or ``static/index.html``, else a placeholder);
- ``POST /api/conversations`` ``{"id": "general"}`` → 201, or 200 if it exists;
- ``POST /api/conversations/<cid>/messages`` ``{"sender", "body", "client_ts"?, "id"?}`` → 201
  ``{"seq", "sent_at"}`` once the message is stored. ``id`` is the client's idempotency key
  (``inputs.CLIENT_ID_FIELD``): a resend with an id this sender used before in the conversation
  stores nothing and answers 200 ``{"seq", "sent_at", "repeated": true}`` with the original number.

Every error is a JSON ``{"error": ...}`` with a 4xx status: 400 bad input, 404 unknown
conversation, 413 a body over 4 KiB. The checks are ``inputs``' plain functions; a rejected
request writes nothing.
"""
import logging
import os
import resource

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from . import inputs, long_polling, short_polling, sse
from .hub import Hub
from .settings import Settings
from .store import AfterBeyondLast, Message, UnknownConversation

MAX_REQUEST_BYTES = 64 * 1024
PAGES = ("chat.html", "index.html")   # the first that exists in static/ is served at /
LOG = logging.getLogger("realtime_delivery.app")
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
    app.url_map.merge_slashes = False   # "/api/conversations/a//messages" is a 404, not a redirect
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
        conversation = inputs.new_conversation(request.get_data())
        created = hub.create(conversation)
        return jsonify(id=conversation, created=created), 201 if created else 200

    @app.post("/api/conversations/<conversation>/messages")
    def send_message(conversation: str):
        message = send(hub, conversation, request.get_data())
        stats["sends.http"] += 1
        if message.repeated:
            return jsonify(seq=message.seq, sent_at=message.sent_at, repeated=True), 200
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

    @app.errorhandler(Exception)
    def unexpected(problem: Exception):   # a bug: still a 500, but JSON and logged
        LOG.exception("unexpected error")
        return error(500, f"internal error ({type(problem).__name__}); see the server's log")

    return app


def send(hub: Hub, conversation: str, data: bytes) -> Message:
    """A send over HTTP: the conversation (404 before looking at the body), the message, stored once."""
    conversation = inputs.conversation_id(conversation)
    hub.channel(conversation)
    new = inputs.send_request(data)
    return hub.send(conversation, new.sender, new.body, new.client_ts, new.client_id)
