"""The push API (Flask): ``python -m demos.push_at_scale.api --port 8000``.

- ``POST /devices`` ``{"device": "d1", "topics": ["news"]}``: registers a device (an app backend
  would do this after its own login) and answers ``201`` with its signed token and the gateway
  addresses to try, in order (``GATEWAYS``, comma-separated ``ws://`` URLs). ``"devices": [...]``
  (up to 1,000) registers many with the same topics and answers their ``tokens``.
- ``POST /push`` with exactly one of ``"device": "d1"``, ``"devices": ["d1", "d2"]`` or
  ``"topic": "news"``, a ``"body"`` (text, at most 4 KiB) and optionally ``"urgent": false``
  (held until the device's next heartbeat) and ``"notify": true`` (notify-then-pull): answers
  ``202 {"id": ...}`` at once. The message is stored (committed, numbered) before it is routed:
  one kombu message per gateway holding a recipient.
- Bad input is a 4xx with a JSON reason and changes nothing: malformed JSON, wrong types, an
  unknown device or topic (404), a body over the bound (413). A broker that does not answer costs
  about a second and the answer says ``"routed": false``: the message is stored and reaches its
  devices through the gateways' safety net (a second or two) or when they reconnect.
- ``GET /health``, ``GET /stats``.
"""
import argparse
import os
import re
import secrets
import threading
import time
from collections import Counter

from flask import Flask, jsonify, request

from .. import json_body, web
from ..message_queues.store import redacted
from . import tokens
from .bus import BrokerUnavailable, Bus, broker_url
from .routing import routes_for
from .store import Store

MAX_BODY_CHARS = 4096
MAX_LIST = 1000
TOPICS_PER_DEVICE = 32
DEVICE = tokens.DEVICE_ID
TOPIC = tokens.TOPIC_ID
TOPIC_CACHE_S = 1.0
PUSH_EXAMPLE = '{"device": "d1", "body": "hello"} (or "devices": [...], or "topic": "news")'


class Services:
    def __init__(self, store: Store, bus: Bus, gateway_urls: list[str], token_ttl_s: float = 3600):
        self.store, self.bus, self.gateway_urls, self.token_ttl_s = store, bus, gateway_urls, token_ttl_s
        self.routes = routes_for(store)
        self.stats: Counter = Counter()
        self.lock = threading.Lock()
        self._gateways, self._gateways_at = [], 0.0

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n

    def live_gateways(self) -> list[str]:
        if time.monotonic() - self._gateways_at > TOPIC_CACHE_S:
            self._gateways, self._gateways_at = self.routes.gateways(), time.monotonic()
        return self._gateways


def bad(message: str, status: int = 400):
    return jsonify(error=message), status


def parse_push(raw: bytes) -> dict:
    body = json_body.object_of(raw, PUSH_EXAMPLE)
    targets = [key for key in ("device", "devices", "topic") if key in body]
    if len(targets) != 1:
        raise json_body.BadJson(f"name exactly one of device, devices, topic: {PUSH_EXAMPLE}")
    text = body.get("body")
    if not isinstance(text, str) or len(text) > MAX_BODY_CHARS:
        raise json_body.BadJson(f"body must be text of at most {MAX_BODY_CHARS} characters")
    for flag in ("urgent", "notify"):
        if not isinstance(body.get(flag, False), bool):
            raise json_body.BadJson(f"{flag} must be true or false")
    push = {"body": text, "urgent": body.get("urgent", True), "notify": body.get("notify", False)}
    if "device" in body:
        push["devices"] = [json_body.text(body, "device", DEVICE, "a device id (letters, digits, _.:-, 1-64)")]
    elif "devices" in body:
        devices = body["devices"]
        if (not isinstance(devices, list) or not 0 < len(devices) <= MAX_LIST
                or not all(isinstance(d, str) and DEVICE.fullmatch(d) for d in devices)):
            raise json_body.BadJson(f"devices must be a list of 1 to {MAX_LIST} device ids")
        push["devices"] = list(dict.fromkeys(devices))
    else:
        push["topic"] = json_body.text(body, "topic", TOPIC, "a topic name (letters, digits, _.-, 1-64)")
    return push


def route(services: Services, push: dict) -> tuple[dict, int]:
    """Store, then publish one bus message per gateway; the answer and its status."""
    store, flags = services.store, int(push["urgent"]) | (int(push["notify"]) << 1)
    if "topic" in push:
        if not store.topic_known(push["topic"]):
            return {"error": f"unknown topic {push['topic']!r}: no device registered for it"}, 404
        stored = store.append([f"t:{push['topic']}"], push["body"], flags)
        by_gateway = {gateway: stored for gateway in services.live_gateways()}
    else:
        unknown = store.unknown_devices(push["devices"])
        if unknown:
            return {"error": f"unknown device(s): {', '.join(unknown[:10])}"}, 404
        stored = store.append([f"d:{device}" for device in push["devices"]], push["body"], flags)
        by_gateway = {}
        routes = services.routes.lookup(push["devices"])
        for message, device in zip(stored, push["devices"]):
            if device in routes:
                by_gateway.setdefault(routes[device], []).append(message)
    routed = True
    for gateway, messages in by_gateway.items():
        try:
            services.bus.publish(gateway, [list(message) for message in messages])
        except BrokerUnavailable:
            routed = False
    services.count("pushes")
    services.count("stored", len(stored))
    services.count("bus_messages", len(by_gateway))
    if not routed:
        services.count("not_routed")
    first = stored[0]
    return {"id": f"{first.stream}:{first.seq}" if len(stored) == 1 else secrets.token_hex(8),
            "stored": len(stored), "gateways": len(by_gateway), "routed": routed, "ts": first.ts}, 202


def create_app(services: Services) -> Flask:
    def stats() -> dict:
        with services.lock:
            return dict(services.stats)

    app = web.json_app(__name__, max_body_bytes=json_body.MAX_BODY_BYTES, stats=stats)

    @app.post("/devices")
    def register():
        try:
            body = json_body.object_of(request.get_data(cache=False), '{"device": "d1", "topics": ["news"]}')
            if "devices" in body:   # many at once (the loads register thousands)
                devices = body["devices"]
                if (not isinstance(devices, list) or not 0 < len(devices) <= MAX_LIST
                        or not all(isinstance(d, str) and DEVICE.fullmatch(d) for d in devices)):
                    raise json_body.BadJson(f"devices must be a list of 1 to {MAX_LIST} device ids")
            else:
                devices = [json_body.text(body, "device", DEVICE, "a device id (letters, digits, _.:-, 1-64)")]
            topics = body.get("topics", [])
            if (not isinstance(topics, list) or len(topics) > TOPICS_PER_DEVICE
                    or not all(isinstance(t, str) and TOPIC.fullmatch(t) for t in topics)):
                raise json_body.BadJson(f"topics must be a list of at most {TOPICS_PER_DEVICE} topic names")
        except json_body.BadJson as problem:
            services.count("status.400")
            return bad(str(problem))
        services.store.register(devices, topics)
        issued = [tokens.issue(device, topics, services.token_ttl_s) for device in devices]
        if "devices" in body:
            return jsonify(devices=devices, tokens=issued, gateways=services.gateway_urls), 201
        return jsonify(device=devices[0], token=issued[0], gateways=services.gateway_urls), 201

    @app.post("/push")
    def push():
        try:
            parsed = parse_push(request.get_data(cache=False))
        except json_body.BadJson as problem:
            services.count("status.400")
            return bad(str(problem))
        answer, status = route(services, parsed)
        services.count(f"status.{status}")
        return jsonify(answer), status

    @app.errorhandler(Exception)
    def unexpected(problem: Exception):
        app.logger.exception("unexpected error")
        return bad(f"internal error: {type(problem).__name__}", 500)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", os.path.join("var", "push_at_scale")))
    args = parser.parse_args()
    store = Store.from_env(args.data_dir)
    url = broker_url(args.data_dir)
    bus = Bus(url, os.environ.get("PUSH_NAMESPACE", "push"))
    try:
        bus._producer()   # fail at start, saying what to do, if the broker does not answer
    except BrokerUnavailable as problem:
        raise SystemExit(f"error: {problem}")
    gateways = [u for u in re.split(r"[,\s]+", os.environ.get("GATEWAYS", "")) if u]
    services = Services(store, bus, gateways, float(os.environ.get("TOKEN_TTL_S", 3600)))
    import waitress
    print(f"push API on http://{args.host}:{args.port} ({args.threads} threads); store {redacted(store.url)}; broker "
          f"{url.split('@')[-1]}; routing {'redis' if os.environ.get('REDIS_URL') else 'embedded'}", flush=True)
    waitress.serve(create_app(services), host=args.host, port=args.port, threads=args.threads,
                   connection_limit=2000, backlog=2048, ident="push", _quiet=True)


if __name__ == "__main__":
    main()
