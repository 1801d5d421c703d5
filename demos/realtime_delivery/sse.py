"""Server-Sent Events: ``GET /api/conversations/<cid>/events?after=N``, one long ``text/event-stream``.

Each message is an event ``id: <seq>`` / ``event: message`` / ``data: <json>``. The browser's
EventSource reconnects by itself (``retry: 1000`` ms) and sends the last id it saw as
``Last-Event-ID``, which wins over ``after``: the stream resumes exactly where it broke. Messages
pruned before the client read them arrive as one ``event: gap`` (``data: {"first_seq": F, ...}``,
``id: F-1``, so a reconnect after it does not report the gap again). A comment line every
``SSE_HEARTBEAT_S`` (15 s) keeps proxies from closing an idle stream and finds dead clients.
"""
import json

from flask import Flask, Response, request

from . import inputs
from .hub import Hub
from .settings import Settings

BATCH = 100   # messages per write while catching up, so a slow reader holds little memory


def message_event(message) -> str:
    return f"id: {message.seq}\nevent: message\ndata: {message.json}\n\n"


def gap_event(batch) -> str:
    data = json.dumps({"gap": True, "first_seq": batch.first_seq, "last_seq": batch.last_seq})
    return f"id: {batch.first_seq - 1}\nevent: gap\ndata: {data}\n\n"


def register(app: Flask, hub: Hub, settings: Settings) -> None:
    stats = hub.stats

    @app.get("/api/conversations/<conversation>/events")
    def events(conversation: str):
        conversation = inputs.conversation_id(conversation)
        last_event_id = request.headers.get("Last-Event-ID")
        if last_event_id is not None:
            after = inputs.seq(last_event_id, "Last-Event-ID")
        else:
            after = inputs.seq(request.args.get("after"))
        first = hub.after(conversation, after, BATCH)   # unknown conversation or bad N: an error, not a stream
        stats["requests.sse"] += 1

        def stream():
            stats["sse_streams"] += 1
            try:
                yield "retry: 1000\n\n"
                batch, cursor = first, after
                while True:
                    if batch.gap:
                        yield gap_event(batch)
                        cursor = batch.first_seq - 1
                    if batch.messages:
                        yield "".join(message_event(message) for message in batch.messages)
                        cursor = batch.messages[-1].seq
                        stats["deliveries.sse"] += len(batch.messages)
                    elif not batch.gap:
                        yield ": heartbeat\n\n"
                    batch = hub.wait_after(conversation, cursor, settings.sse_heartbeat_s, BATCH)
            finally:
                stats["sse_streams"] -= 1

        return Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
