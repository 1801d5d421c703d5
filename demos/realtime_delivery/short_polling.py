"""Short polling (轮询): ``GET /api/conversations/<cid>/messages?after=N`` answers at once.

The client asks again every interval, so a message waits for the next poll: about half the
interval on average, the whole interval at worst, and most polls come back empty.
Answer: ``{"messages": [...], "last_seq": M, "gap": bool, "first_seq": F or null}``.
"""
from flask import Flask, Response, request

from . import inputs
from .hub import Hub
from .settings import Settings


def register(app: Flask, hub: Hub, settings: Settings) -> None:
    @app.get("/api/conversations/<conversation>/messages")
    def short_poll(conversation: str):
        after = inputs.seq(request.args.get("after"))
        batch = hub.after(inputs.conversation_id(conversation), after)
        hub.stats["requests.short_poll"] += 1
        hub.stats["deliveries.short_poll"] += len(batch.messages)
        return Response(batch.json, mimetype="application/json")
