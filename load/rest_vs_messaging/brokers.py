"""Chapter 5's ``brokers`` scenario: the events wiring on real RabbitMQ and Redis (started by
load/servers.py inside the run, Redis with its append-only file), under open-loop restocks:

- ``<broker>-broker-down``: the broker SIGKILLed mid-load and started again on the same port and
  data: inventory's answers over time (the outbox keeps the events), how long the e-mails take to
  drain once it is back, and the books (every owed e-mail once, raw attempts counted);
- ``<broker>-consumer-down`` (and the second fault of ``rabbitmq-broker-and-consumer-down``): one of
  several stock-view consumers (analytics, ``view.py``) SIGKILLed while it holds events: the others
  and its restart get them again, out of publish order.
Every run keeps several stock-view consumers on one queue and counts the events they handled out
of publish order (``ordering.json``), what the version check skipped, and the final view against
inventory's stock; the outbox's rows (``outbox.csv``) show how long each event waited for the broker.
"""
import contextlib
import csv
import threading
import time

from load.harness import Run
from load.rest_vs_messaging.stack import STALLED_S
from load.servers import running

VIEWER_CONCURRENCY = 4


def brokers_plan(size: str) -> dict:
    """Open loop, events wiring on real RabbitMQ and Redis: the broker SIGKILLed mid-load (and a
    stock-view consumer SIGKILLed): success rate and latency over time, the drain after the restart,
    the books, and the events applied out of publish order by several consumers."""
    from load.rest_vs_messaging.scenarios import SIZES
    p = SIZES[size]["brokers"]
    return {name: dict(broker=name.split("-")[0], seconds=run["seconds"], faults=[list(f) for f in run["faults"]],
                       arrival_rate=p["rate"], users=p["users"], products=p["products"], subscribers=p["subscribers"],
                       viewers=p["viewers"], hold_s=p["hold_s"] if any(f[0] == "consumer" for f in run["faults"]) else 0.0,
                       wiring="events", loop="open")
            for name, run in p["runs"].items()}


def perform_brokers(run: Run) -> None:
    """The faults come one after another (the first is the one the figure shades): each
    ``[what, kill_after_s, down_s]``, ``what`` the broker or the first stock-view consumer; the
    first's ``kill_after_s`` counts from the start of the load, the next one's from the moment the
    previous target was ready again."""
    from load.rest_vs_messaging.scenarios import LOCUSTFILE, settle_and_audit, start_stack
    p = run.params
    products = [f"p{n}" for n in range(1, p["products"] + 1)]
    with contextlib.ExitStack() as servers:
        server = servers.enter_context(running(p["broker"], str(run.dir / "data" / "servers"),
                                               appendonly=p["broker"] == "redis"))
        stack = start_stack(run, "events", {product: p["subscribers"] for product in products}, broker_url=server.url)
        hold = ("--hold-before-work", f"{p['hold_s']:g}") if p["hold_s"] else ()
        viewers = stack.consumers_of("analytics", p["viewers"], "--concurrency", str(VIEWER_CONCURRENCY), *hold)
        targets = [(server if what == "broker" else viewers[0], after, down) for what, after, down in p["faults"]]
        load_over = threading.Event()
        chain = threading.Thread(target=faults_in_turn, args=(run, targets, load_over), daemon=True)
        chain.start()
        try:
            run.locust(LOCUSTFILE, host=stack.url, users=p["users"], run_time_s=p["seconds"],
                       arrival_rate=p["arrival_rate"], extra_args=("--products", ",".join(products)))
        finally:
            load_over.set()
            chain.join(180)
        settle_and_audit(run, stack, timeout_s=60 + 2 * p["seconds"])
        consumer_killed = [f["killed_at"] for f in run.notes["faults"] if f["target"] == viewers[0].name]
        run.save_json("ordering", ordering_books(run, stack, timeout_s=30, split_at=consumer_killed[0] if consumer_killed else None))
        run.stop()   # the services go before the broker they use


def faults_in_turn(run: Run, targets: list, load_over: threading.Event) -> None:
    """``run.fault`` for each target in turn, each one held until the load is over; the next one
    starts (its ``kill_after_s`` counting) once the previous target is ready again."""
    with contextlib.ExitStack() as held:
        for target, kill_after_s, down_s in targets:
            fault = held.enter_context(run.fault(target, kill_after_s=kill_after_s, down_s=down_s))
            while not fault.record["ready_at"] and not fault.record.get("error") and not load_over.wait(0.1):
                pass
            if load_over.is_set():
                break
        load_over.wait()


def ordering_books(run: Run, stack, timeout_s: float, split_at: float | None = None) -> dict:
    """Wait (bounded) until the stock-view consumers have seen every published event; then count
    their deliveries against inventory's stock (demos/rest_vs_messaging/view.py), and save the
    outbox's rows (when each event was written and published) as ``outbox.csv``."""
    from demos.message_queues.store import Database
    from demos.rest_vs_messaging import view
    from demos.rest_vs_messaging.app import INVENTORY_SCHEMA
    from demos.rest_vs_messaging.events import SEEN_SCHEMA
    settings = stack.settings
    inventory = Database(settings.database("inventory"), schema=INVENTORY_SCHEMA)
    analytics = Database(settings.database("analytics"), schema=SEEN_SCHEMA.format(consumer="analytics")
                         + ";" + view.VIEW_SCHEMA)
    deadline = time.monotonic() + timeout_s
    last_seen, moved_at = -1, time.monotonic()
    while True:
        with inventory.transaction() as db:
            outbox = db.execute("SELECT event_id, created_at, published_at FROM outbox ORDER BY id").fetchall()
            truth = dict(db.execute("SELECT id, stock FROM inventory_products").fetchall())
        with analytics.transaction() as db:
            seen = {event_id for (event_id,) in db.execute("SELECT event_id FROM analytics_seen")}
            found = view.read(db)
        missed = {event_id for event_id, _, _ in outbox} - seen
        if len(seen) != last_seen:
            last_seen, moved_at = len(seen), time.monotonic()
        if not missed or time.monotonic() > min(deadline, moved_at + STALLED_S):   # a stall: lost, not late
            break
        time.sleep(0.2)
    with open(run.dir / "outbox.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["event_id", "created_at", "published_at"])
        writer.writerows(outbox)
    counts = {"events": len(outbox), "unpublished": sum(published is None for _, _, published in outbox),
              "missed": len(missed), **view.ordering(found["arrivals"], truth, found["view"])}
    if split_at:   # the deliveries from a consumer's SIGKILL on, on their own (the newest seen before still counts)
        late = view.ordering(found["arrivals"], truth, found["view"], since=split_at)
        counts["after_consumer_kill"] = {key: late[key] for key in ("deliveries", "out_of_order", "stale", "repeats")}
    return counts


def brokers_headline(run: Run) -> str:
    import json
    from load.rest_vs_messaging.scenarios import audit_line
    summary = run.locust_result.summary if run.locust_result else {}
    path = run.dir / "ordering.json"
    order = json.loads(path.read_text()) if path.exists() else {}
    killed = " then ".join(what for what, _, _ in run.params["faults"])
    return (f"{run.params['broker']}, {killed} SIGKILLed: {summary.get('failures', 0)} of "
            f"{summary.get('requests', 0)} stock updates failed; books {audit_line(run)}; stock view: "
            f"{order.get('out_of_order')} of {order.get('deliveries')} deliveries out of order, "
            f"{order.get('repeats')} repeats, {order.get('missed')} events missed, "
            f"view wrong for {order.get('view_wrong')} products (without the version check: {order.get('naive_wrong')})")
