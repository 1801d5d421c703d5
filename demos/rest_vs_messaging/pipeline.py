"""The pipeline (the article's second wiring): inventory tells an orchestrator "stock updated" and
knows nothing else; the orchestrator drives the steps (ask the subscriber manager, then one e-mail
per subscriber, with the REST chain's timeouts, retries and breaker) and shows every flow in one
place (``GET /flows``: the central visibility the article credits it with). Inventory no longer
knows the notifier, but everyone now depends on the orchestrator, and the answer still waits for the
last e-mail.
Run: python -m demos.rest_vs_messaging.service orchestrator --port 8004
"""
import threading
import time
from collections import deque

from flask import Flask, jsonify, request

from .. import json_body
from .app import PRODUCT, RESTOCK, Unavailable
from .rest import notify_all

RECENT = 50


def create_orchestrator(subscribers_url: str, email_url: str) -> Flask:
    app = Flask("orchestrator")
    flows = {"done": 0, "failed": 0}
    recent: deque = deque(maxlen=RECENT)
    lock = threading.Lock()

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/flows")
    def show_flows():
        with lock:
            return jsonify(counts=flows, recent=list(recent))

    @app.post("/flows")
    def stock_updated():
        try:
            body = json_body.object_of(request.get_data(cache=False), '{"restock": "<uuid>", "product": "p1"}')
            restock_id = json_body.text(body, "restock", RESTOCK, "a restock id (a UUID)")
            product = json_body.text(body, "product", PRODUCT, "a product id")
        except json_body.BadJson as problem:
            return jsonify(error=str(problem)), 400
        started = time.time()
        flow = {"restock": restock_id, "product": product, "steps": ["subscribers", "emails"], "started": started}
        try:
            flow["sent"] = notify_all(subscribers_url, email_url, restock_id, product)
            flow["status"], status = "done", 200
        except Unavailable as problem:
            flow["status"], flow["error"], status = "failed", str(problem), 503
        flow["seconds"] = round(time.time() - started, 3)
        with lock:
            flows[flow["status"]] += 1
            recent.append(flow)
        return jsonify(flow), status

    return app
