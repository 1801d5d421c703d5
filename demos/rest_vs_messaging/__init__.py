"""Chapter 5: the article's back-in-stock example (inventory -> notifier -> subscriber manager ->
one e-mail per subscriber) wired three ways over the same business logic:

- ``rest``: inventory calls the notifier, which asks the subscriber manager and calls the e-mail
  service once per subscriber, one after another (``rest-concurrent``: a few at a time), with
  timeouts, bounded retries (tenacity) and a circuit breaker (pybreaker);
- ``pipeline``: inventory tells an orchestrator "stock updated"; the orchestrator drives the steps;
- ``events``: inventory writes the restock and an "inventory updated" event in one transaction (the
  outbox, demos/outbox.py) and answers; a relay publishes it through kombu; the notifier consumes
  it and publishes one e-mail job per subscriber; the e-mail service consumes those.

The e-mail service sends real SMTP to a local sink (``sink.py``, aiosmtpd) that records every
attempt: the audit (``books.py``) counts raw attempts there. Run one wiring by hand:
``python -m demos.rest_vs_messaging.stack --wiring events`` (see the chapter's README).
"""
