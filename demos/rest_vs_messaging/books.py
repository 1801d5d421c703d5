"""The audit: the books of a run, from every service's own records and the sink's raw attempts.

Owed: one e-mail per subscriber of every restock inventory accepted (its row exists; one answered
with an error has none). The sink's every attempt is a row, so:

- ``missing``: owed, never accepted by the sink (lost);
- ``orphans``: accepted for a restock inventory did not make (REST: the chain failed after some
  e-mails had gone out, so the restock was refused but those subscribers were told anyway);
- ``repeats``: accepted again for a key accepted before (a redelivery or a retry that slipped past
  the sender's own record); harmless because the provider takes the idempotency key;
- ``refused``: attempts the sink refused (451) or that the sender retried.

``ok`` means nothing missing and no orphan: every accepted restock's subscribers got exactly one
effective e-mail, and a refused restock none.
"""
from collections import Counter, defaultdict

from ..message_queues.store import Database
from .app import INVENTORY_SCHEMA, SUBSCRIBERS_SCHEMA
from .settings import Settings
from .sink import SCHEMA as SINK_SCHEMA


def read(settings: Settings) -> dict:
    with Database(settings.database("inventory"), schema=INVENTORY_SCHEMA).transaction() as db:
        restocks = db.execute("SELECT id, product, requested_at, created_at FROM inventory_restocks").fetchall()
    with Database(settings.database("subscribers"), schema=SUBSCRIBERS_SCHEMA).transaction() as db:
        subscriptions = db.execute("SELECT id, product FROM subscriptions").fetchall()
    with Database(settings.database("sink"), schema=SINK_SCHEMA).transaction() as db:
        attempts = db.execute("SELECT idempotency_key, accepted, received_at FROM sink_attempts ORDER BY id").fetchall()
    return {"restocks": restocks, "subscriptions": subscriptions, "attempts": attempts}


def audit(records: dict) -> dict:
    by_product = defaultdict(list)
    for number, product in records["subscriptions"]:
        by_product[product].append(number)
    made = {restock for restock, *_ in records["restocks"]}
    owed = {f"{restock}:{number}" for restock, product, *_ in records["restocks"] for number in by_product[product]}
    accepted = Counter(key for key, ok, _ in records["attempts"] if ok)
    effective = set(accepted)
    orphans = {key for key in effective if key.split(":")[0] not in made}
    unexpected = effective - owed - orphans
    missing = owed - effective
    return {
        "restocks": len(made), "owed": len(owed), "attempts": len(records["attempts"]),
        "accepted": sum(accepted.values()), "effective": len(effective & owed),
        "missing": len(missing), "orphans": len(orphans), "unexpected": len(unexpected),
        "repeats": sum(accepted.values()) - len(effective),
        "refused": len(records["attempts"]) - sum(accepted.values()),
        "ok": not missing and not orphans and not unexpected,
    }


def last_email_delays(records: dict) -> list[dict]:
    """Per accepted restock: its product, when it was requested and answered, and when the sink
    accepted its last e-mail (None if none yet)."""
    last: dict = {}
    for key, ok, at in records["attempts"]:
        if ok:
            restock = key.split(":")[0]
            last[restock] = max(at, last.get(restock, at))
    return [{"restock": restock, "product": product, "requested_at": requested, "created_at": created,
             "last_email_at": last.get(restock)} for restock, product, requested, created in records["restocks"]]
