"""The REST chain (the article's first wiring): inventory -> notifier -> subscriber manager, then
the e-mail service once per subscriber, all synchronous. The stock update answers only when every
e-mail is sent, so its latency grows with the subscriber count; if one e-mail fails after its
retries, the notifier answers 503, inventory does not make the restock, and the e-mails already sent
for it went out for a restock that never happened (the books count them).

Every call has a timeout; each e-mail call is retried a bounded number of times (tenacity) behind a
circuit breaker (pybreaker) that, after repeated failures, fails at once instead of waiting on a
dead service. ``--concurrency N`` sends N e-mails at a time (the ``rest-concurrent`` wiring), over one pool of N
threads shared by all requests.
Run: python -m demos.rest_vs_messaging.rest notifier --port 8002 [--concurrency 8]
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import pybreaker
import requests
from tenacity import retry, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from .app import Inventory, Unavailable, http, subscribers_of

EMAIL_TIMEOUT_S = 2.0          # one e-mail call (the sink answers in 5 ms, or 200 ms when slow)
ATTEMPTS = 3                   # per e-mail: the first call and two retries
CHAIN_TIMEOUT_S = 120.0        # inventory's wait for the whole chain (1,000 subscribers take seconds)
# pybreaker's call() holds the breaker's lock for the whole call, so one breaker shared by threads
# sends one e-mail at a time however many threads ask: each thread has its own (waitress's request
# threads and the sending pool's threads live as long as the process)
_breakers = threading.local()
_pools: dict = {}


def breaker() -> pybreaker.CircuitBreaker:
    if getattr(_breakers, "breaker", None) is None:
        _breakers.breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=2, name="email")
    return _breakers.breaker


class EmailFailed(RuntimeError):
    pass


def send_once(email_url: str, to: str, key: str, product: str) -> None:
    try:
        response = http().post(f"{email_url}/send", json={"to": to, "key": key, "product": product},
                               timeout=EMAIL_TIMEOUT_S)
    except requests.RequestException as error:
        raise EmailFailed(f"e-mail service: {type(error).__name__}") from error
    if response.status_code != 200:
        raise EmailFailed(f"e-mail service answered {response.status_code}")


@retry(stop=stop_after_attempt(ATTEMPTS), wait=wait_exponential(multiplier=0.05, max=0.4),
       retry=retry_if_not_exception_type(pybreaker.CircuitBreakerError), reraise=True)
def send_with_retries(email_url: str, to: str, key: str, product: str) -> None:
    breaker().call(send_once, email_url, to, key, product)


def notify_all(subscribers_url: str, email_url: str, restock_id: str, product: str, concurrency: int = 1) -> int:
    """Ask for the subscribers, then send each one's e-mail (``concurrency`` at a time); the count
    sent, or Unavailable at the first e-mail that failed after its retries."""
    subscribers = subscribers_of(subscribers_url, product)
    jobs = [(email_url, s["email"], f"{restock_id}:{s['id']}", product) for s in subscribers]
    try:
        if concurrency <= 1:
            for job in jobs:
                send_with_retries(*job)
        else:
            pool = _pools.setdefault(concurrency, ThreadPoolExecutor(concurrency, thread_name_prefix="send"))
            for done in [pool.submit(send_with_retries, *job) for job in jobs]:
                done.result()
    except (EmailFailed, pybreaker.CircuitBreakerError) as error:
        raise Unavailable(f"an e-mail could not be sent: {error or type(error).__name__}") from error
    return len(jobs)


def call(url: str, payload: dict, what: str) -> None:
    """POST ``payload`` and wait for 200 (the whole chain behind it); Unavailable otherwise."""
    try:
        response = http().post(url, json=payload, timeout=CHAIN_TIMEOUT_S)
    except requests.RequestException as error:
        raise Unavailable(f"{what} did not answer: {type(error).__name__}") from error
    if response.status_code != 200:
        raise Unavailable(f"{what} answered {response.status_code}: {response.text[:200]}")


def restock_via(url: str, what: str):
    """Inventory's side of a synchronous wiring: the chain first, then the restock, so a failed
    chain makes nothing (and the e-mails it sent are orphans)."""
    def restock(inventory: Inventory, restock_id: str, product: str, quantity: int) -> int:
        call(url, {"restock": restock_id, "product": product}, what)
        with inventory.database.transaction() as db:
            return inventory.apply(db, restock_id, product, quantity)
    return restock


def create_notifier(subscribers_url: str, email_url: str, concurrency: int):
    from flask import Flask, jsonify, request
    from .. import json_body
    from .app import PRODUCT, RESTOCK

    app = Flask("notifier")

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.post("/notify")
    def notify():
        try:
            body = json_body.object_of(request.get_data(cache=False), '{"restock": "<uuid>", "product": "p1"}')
            restock_id = json_body.text(body, "restock", RESTOCK, "a restock id (a UUID)")
            product = json_body.text(body, "product", PRODUCT, "a product id")
        except json_body.BadJson as problem:
            return jsonify(error=str(problem)), 400
        try:
            sent = notify_all(subscribers_url, email_url, restock_id, product, concurrency)
        except Unavailable as problem:
            return jsonify(error=str(problem)), 503
        return jsonify(sent=sent), 200

    return app
