"""The analytics consumer's stock view: the stock inventory last announced for each product, right
even when events arrive out of publish order.

Out of order is normal with events: several consumer processes share one queue (each takes the
next message, and one may finish later than another), a consumer handles several at once, and a
message whose consumer was SIGKILLed comes back (is redelivered) after newer ones went through.
Inventory numbers every product's restocks (``version`` 1, 2, 3 ... in the same transaction as the
change, carried by the event), and the view applies an event only when its version is newer than
the one it holds: an older one (``stale``) is skipped, a second delivery of one it has seen
(``repeat``) too. Every delivery is recorded in ``stock_view_arrivals``, so a run can count how many
came out of order; ``naive_stock`` keeps what a view without the version check would show (the
last arrival wins), to measure what the check prevents.
"""
import time

VIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock_view (
    product TEXT PRIMARY KEY,
    stock BIGINT NOT NULL,
    version BIGINT NOT NULL,
    naive_stock BIGINT NOT NULL    -- without the version check: the last arrival's stock
);
CREATE TABLE IF NOT EXISTS stock_view_arrivals (
    event_id TEXT NOT NULL,
    product TEXT NOT NULL,
    version BIGINT NOT NULL,
    consumer TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    outcome TEXT NOT NULL          -- applied, stale (older than the view's version) or repeat
)
"""
# one statement, so two consumers racing on one product (PostgreSQL) cannot both win
UPSERT = """
INSERT INTO stock_view (product, stock, version, naive_stock) VALUES (?, ?, ?, ?)
ON CONFLICT (product) DO UPDATE SET
    stock = CASE WHEN excluded.version > stock_view.version THEN excluded.stock ELSE stock_view.stock END,
    version = CASE WHEN excluded.version > stock_view.version THEN excluded.version ELSE stock_view.version END,
    naive_stock = excluded.naive_stock
RETURNING version
"""


def well_formed(event) -> bool:
    return (isinstance(event, dict) and all(isinstance(event.get(key), str) for key in ("event_id", "restock", "product"))
            and all(type(event.get(key)) is int for key in ("stock", "version")))


def apply(db, event: dict, consumer: str, seen_table: str = "analytics_seen") -> str:
    """In the caller's transaction: record one delivery of ``event`` and apply it if it is the
    newest of its product so far; return ``applied``, ``stale`` or ``repeat``."""
    now = time.time()
    first = db.execute(f"INSERT INTO {seen_table} (event_id, restock, received_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (event_id) DO NOTHING", (event["event_id"], event["restock"], now)).rowcount == 1
    if not first:
        outcome = "repeat"
    else:
        [(version,)] = db.execute(UPSERT, (event["product"], event["stock"], event["version"], event["stock"])).fetchall()
        outcome = "applied" if version == event["version"] else "stale"
    db.execute("INSERT INTO stock_view_arrivals (event_id, product, version, consumer, received_at, outcome)"
               " VALUES (?, ?, ?, ?, ?, ?)", (event["event_id"], event["product"], event["version"], consumer, now, outcome))
    return outcome


def read(db) -> dict:
    """The view and every delivery: ``{"view": {product: (stock, version, naive_stock)}, "arrivals": [...]}``."""
    view = {product: (stock, version, naive) for product, stock, version, naive
            in db.execute("SELECT product, stock, version, naive_stock FROM stock_view")}
    arrivals = [dict(zip(("event_id", "product", "version", "consumer", "received_at", "outcome"), row)) for row in
                db.execute("SELECT event_id, product, version, consumer, received_at, outcome FROM stock_view_arrivals"
                           " ORDER BY received_at")]
    return {"view": view, "arrivals": arrivals}


def ordering(arrivals: list[dict], truth: dict[str, int], view: dict, since: float = 0.0) -> dict:
    """Counts from the deliveries (in the order they were handled) and the final view against
    inventory's stock (``truth``: product -> stock): how many came after a newer version of their
    product (out of order), how many were repeats, and the products the view, and a view without
    the version check, got wrong. ``since``: count only the deliveries handled from then on."""
    newest: dict[str, int] = {}
    out_of_order = 0
    for arrival in sorted(arrivals, key=lambda a: a["received_at"]):
        if arrival["outcome"] == "repeat":
            continue
        if arrival["version"] < newest.get(arrival["product"], 0) and arrival["received_at"] >= since:
            out_of_order += 1
        newest[arrival["product"]] = max(newest.get(arrival["product"], 0), arrival["version"])
    arrivals = [arrival for arrival in arrivals if arrival["received_at"] >= since]
    outcomes = [arrival["outcome"] for arrival in arrivals]
    return {"deliveries": len(arrivals), "applied": outcomes.count("applied"), "stale": outcomes.count("stale"),
            "repeats": outcomes.count("repeat"), "out_of_order": out_of_order,
            "consumers": len({arrival["consumer"] for arrival in arrivals}),
            "view_wrong": sum(view.get(product, (None,))[0] != stock for product, stock in truth.items()),
            "naive_wrong": sum(view.get(product, (None, None, None))[2] != stock for product, stock in truth.items())}
