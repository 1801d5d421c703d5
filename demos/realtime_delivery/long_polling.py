"""Long polling (长轮询), the article's web IM channel: ``GET /api/conversations/<cid>/poll?after=N``.

With messages after N already in the pool, it answers at once; else it holds the request until one
arrives (answering within milliseconds, like a socket) or until the hold time runs out
(``LONG_POLL_TIMEOUT``, 90 s; ``&timeout=S`` may ask for less), answering an empty list. The client
asks again at once with its new N (the last ``seq`` it got). A message published while the client
is between two polls is not lost: it is in the pool, and the next poll returns it without holding.
"""
from flask import Flask, Response, request

from . import inputs
from .hub import Hub
from .settings import Settings


def register(app: Flask, hub: Hub, settings: Settings) -> None:
    @app.get("/api/conversations/<conversation>/poll")
    def long_poll(conversation: str):
        conversation = inputs.conversation_id(conversation)
        after = inputs.seq(request.args.get("after"))
        timeout_s = inputs.timeout(request.args.get("timeout"), settings.long_poll_timeout_s)
        hub.stats["requests.long_poll"] += 1
        hub.stats["long_polls_held"] += 1
        try:
            batch = hub.wait_after(conversation, after, timeout_s)
        finally:
            hub.stats["long_polls_held"] -= 1
        hub.stats["deliveries.long_poll"] += len(batch.messages)
        return Response(batch.json, mimetype="application/json")
