"""Chapter 5's benchmark scenarios: what ``python -m load run 05-rest-vs-messaging`` runs.

- ``subscribers`` (open loop, Poisson arrivals): stock-update latency by subscriber count in each
  wiring, and the time until the last subscriber's e-mail (the 5 ms e-mail provider).
- ``outage`` (open loop): the e-mail service SIGKILLed for a while under steady load: success rate
  and latency over time per wiring, and how long the events wiring takes to drain its backlog.
- ``slow`` (closed loop, no wait, a bounded number of restocks a user): the e-mail provider slow
  (+200 ms): stock updates per second per wiring, and e-mails per second at the provider.
- ``new-consumer`` (open loop, events): an analytics consumer started while inventory keeps running
  receives every event from then on; inventory's process is untouched.
- ``brokers`` (open loop, events on real RabbitMQ and Redis): the broker, or one of several
  stock-view consumers, SIGKILLed mid-load: answers over time, the drain, the books, and the events
  applied out of publish order (load/rest_vs_messaging/brokers.py).
After every run the books (demos/rest_vs_messaging/books.py) are saved as ``audit.json``.
"""
import csv
import os
import threading
import time
from pathlib import Path

from demos.rest_vs_messaging import books
from load.harness import Run, Scenario, headline_for
from load.rest_vs_messaging.brokers import brokers_headline, brokers_plan, perform_brokers
from load.rest_vs_messaging.stack import STALLED_S, Stack

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
WIRINGS = ("rest", "rest-concurrent", "pipeline", "events")
OUTAGE_FAILURES = "the e-mail service is down: the REST chain cannot send, so the stock update fails"

SIZES = {
    "smoke": dict(
        # users enough (as at default) that a slow REST chain on a busy machine never holds up an arrival
        subscribers=dict(wirings=("rest", "events"), counts=(1, 10), seconds=3, rate=4, users=40),
        # users enough that requests held by the outage (timeouts, retries) never hold up an arrival
        outage=dict(wirings=("pipeline", "events"), seconds=6, kill_after_s=1.5, down_s=2.5, rate=4, subscribers=3, users=40),
        slow=dict(wirings=("rest-concurrent",), seconds=2, users=2, max_restocks=5, delay_ms=200, subscribers=3),
        **{"new-consumer": dict(seconds=4, rate=5, users=40)},
        # Redis only (it starts in a fraction of a second): the broker down 1 s in 3 s, killed once Locust runs
        brokers=dict(runs={"redis-broker-down": dict(seconds=3, faults=(("broker", 1.5, 1),))}, rate=8, users=20,
                     products=2, subscribers=2, viewers=2, hold_s=1.0)),
    "default": dict(
        subscribers=dict(wirings=WIRINGS, counts=(1, 10, 100), seconds=5, rate=2, users=40),
        outage=dict(wirings=("rest", "pipeline", "events"), seconds=15, kill_after_s=3, down_s=10, rate=4,
                    subscribers=5, users=40),
        slow=dict(wirings=WIRINGS, seconds=4, users=4, max_restocks=25, delay_ms=200, subscribers=5),
        **{"new-consumer": dict(seconds=10, rate=10, users=40)},
        # RabbitMQ: the broker down 2 s (and 6 to 10 s more for its restart after a SIGKILL: its Mnesia
        # schema check alone takes 4 s then), then, 3 s after it is back (its backlog drained), a
        # stock-view consumer SIGKILLed holding events (each 0.5 s before the update), with 3 s or more of
        # load left; a run whose consumer kill fell after the load is invalid (load.harness.faults_missed)
        brokers=dict(runs={"rabbitmq-broker-and-consumer-down": dict(seconds=20, faults=(("broker", 1.5, 2),
                                                                                         ("consumer", 3, 1.5))),
                           "redis-broker-down": dict(seconds=6, faults=(("broker", 1.5, 3),))},
                     rate=8, users=40, products=2, subscribers=3, viewers=3, hold_s=0.5)),
    "workshop": dict(
        subscribers=dict(wirings=WIRINGS, counts=(1, 10, 100, 1000), seconds=30, rate=1, users=100),
        outage=dict(wirings=WIRINGS, seconds=40, kill_after_s=10, down_s=10, rate=4, subscribers=5, users=40,
                    notifier_down=("rest", "events")),
        slow=dict(wirings=WIRINGS, seconds=20, users=8, max_restocks=50, delay_ms=200, subscribers=5),
        **{"new-consumer": dict(seconds=30, rate=20, users=40)},
        brokers=dict(runs={f"{broker}-{what}-down": dict(seconds=40, faults=((what, 10, 10),))
                           for broker in ("rabbitmq", "redis") for what in ("broker", "consumer")},
                     rate=8, users=40, products=4, subscribers=5, viewers=3, hold_s=1.0)),
}


def start_stack(run: Run, wiring: str, products: dict, broker_url: str = "", **options) -> Stack:
    broker_url = broker_url or os.environ.get("BROKER_URL", "")
    stack = Stack(wiring, run.dir, run.service, broker_url=broker_url, log_folder=run.dir / "logs", **options)
    stack.start()
    stack.seed(products)
    run.notes.update(broker_url=broker_url or "filesystem (embedded default)",
                     products=products, sink_delay_ms=stack.sink_delay_ms)
    return stack


def settle_and_audit(run: Run, stack: Stack, timeout_s: float) -> dict:
    """Wait (bounded) for every owed e-mail, then save the books and the per-restock timeline."""
    started = time.monotonic()
    found = stack.wait_until_settled(timeout_s, stalled_s=STALLED_S)
    run.notes["settle_s"] = round(time.monotonic() - started, 3)
    records = stack.records()
    run.save_json("audit", found)
    with open(run.dir / "timeline.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["restock", "product", "requested_at", "created_at", "last_email_at"])
        writer.writeheader()
        writer.writerows(books.last_email_delays(records))
    with open(run.dir / "emails.csv", "w", newline="") as out:   # every attempt at the sink
        writer = csv.writer(out)
        writer.writerow(["key", "accepted", "received_at"])
        writer.writerows(records["attempts"])
    return found


def subscribers_plan(size: str) -> dict:
    """Open loop (Poisson restocks over products with 1, 10, 100 ... subscribers): stock-update
    latency against the subscriber count per wiring, and the time until the last e-mail."""
    p = SIZES[size]["subscribers"]
    # the full sweep (workshop size) has its own run names, so it sits beside the default runs
    suffix = f"-to-{max(p['counts'])}" if max(p["counts"]) > 100 else ""
    return {wiring + suffix: dict(wiring=wiring, counts=list(p["counts"]), seconds=p["seconds"], arrival_rate=p["rate"],
                         users=p["users"], loop="open") for wiring in p["wirings"]}


def outage_plan(size: str) -> dict:
    """Open loop: the e-mail service SIGKILLed for ``down_s`` under steady restocks: success rate
    and latency over time per wiring, and the events wiring's backlog drain (workshop size: the
    notifier too)."""
    p = SIZES[size]["outage"]
    runs = {(wiring, "email") for wiring in p["wirings"]} | {(wiring, "notifier") for wiring in p.get("notifier_down", ())}
    return {wiring if target == "email" else f"{wiring}-notifier-down":
            dict(wiring=wiring, target=target, seconds=p["seconds"], kill_after_s=p["kill_after_s"], down_s=p["down_s"],
                 arrival_rate=p["rate"], users=p["users"], subscribers=p["subscribers"], loop="open",
                 **({"expect": {"failures": OUTAGE_FAILURES.replace("e-mail service", target)}} if wiring != "events" else {}))
            for wiring, target in sorted(runs, key=lambda run: (run[1] != "email", WIRINGS.index(run[0])))}


def slow_plan(size: str) -> dict:
    """Closed loop, no wait, each user stopping after ``max_restocks``: stock updates per second per
    wiring while the e-mail provider answers after 200 ms, and e-mails per second at the provider."""
    p = SIZES[size]["slow"]
    return {wiring: dict(wiring=wiring, seconds=p["seconds"], users=p["users"], max_restocks=p["max_restocks"],
                         delay_ms=p["delay_ms"], subscribers=p["subscribers"], loop="closed")
            for wiring in p["wirings"]}


def new_consumer_plan(size: str) -> dict:
    """Open loop, events wiring: an analytics consumer started halfway through the run receives
    every event published after it is ready; inventory keeps its process and answers throughout."""
    p = SIZES[size]["new-consumer"]
    return {"events": dict(wiring="events", seconds=p["seconds"], arrival_rate=p["rate"], users=p["users"], loop="open")}


def perform_subscribers(run: Run) -> None:
    p = run.params
    stack = start_stack(run, p["wiring"], {f"p{n}": n for n in p["counts"]})
    run.locust(LOCUSTFILE, host=stack.url, users=p["users"], run_time_s=p["seconds"], arrival_rate=p["arrival_rate"],
               extra_args=("--products", ",".join(f"p{n}" for n in p["counts"])))
    settle_and_audit(run, stack, timeout_s=60 + 2 * p["seconds"])


def perform_outage(run: Run) -> None:
    p = run.params
    stack = start_stack(run, p["wiring"], {"p1": p["subscribers"]})
    target = stack.notifier_service() if p.get("target") == "notifier" else stack.email_service()
    with run.fault(target, kill_after_s=p["kill_after_s"], down_s=p["down_s"]):
        run.locust(LOCUSTFILE, host=stack.url, users=p["users"], run_time_s=p["seconds"],
                   arrival_rate=p["arrival_rate"], extra_args=("--products", "p1"))
    settle_and_audit(run, stack, timeout_s=60 + 2 * p["seconds"])


def perform_slow(run: Run) -> None:
    p = run.params
    stack = start_stack(run, p["wiring"], {"p1": p["subscribers"]}, sink_delay_ms=p["delay_ms"], email_concurrency=16)
    run.locust(LOCUSTFILE, host=stack.url, users=p["users"], run_time_s=p["seconds"],
               extra_args=("--products", "p1", "--max-restocks", str(p["max_restocks"])))
    settle_and_audit(run, stack, timeout_s=120)


def perform_new_consumer(run: Run) -> None:
    p = run.params
    stack = start_stack(run, "events", {"p1": 2})
    inventory_pid = stack.services["inventory"].process.pid
    joined: dict = {}

    def join():
        time.sleep(p["seconds"] / 2)
        stack.consumer("analytics")
        joined["ready_at"] = time.time()

    joiner = threading.Thread(target=join, daemon=True)
    joiner.start()
    run.locust(LOCUSTFILE, host=stack.url, users=p["users"], run_time_s=p["seconds"], arrival_rate=p["arrival_rate"],
               extra_args=("--products", "p1"))
    joiner.join(30)
    settle_and_audit(run, stack, timeout_s=60)
    run.save_json("analytics", analytics_books(stack, joined.get("ready_at"), inventory_pid))


def analytics_books(stack: Stack, ready_at, inventory_pid: int, margin_s: float = 0.2) -> dict:
    """Events published after the analytics consumer was ready, and which of them it received."""
    from demos.message_queues.store import Database
    from demos.rest_vs_messaging.events import SEEN_SCHEMA
    from demos.rest_vs_messaging.app import INVENTORY_SCHEMA
    settings = stack.settings
    deadline = time.monotonic() + 20
    while True:
        with Database(settings.database("inventory"), schema=INVENTORY_SCHEMA).transaction() as db:
            published = db.execute("SELECT event_id, published_at FROM outbox WHERE published_at IS NOT NULL").fetchall()
            pending = db.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
        with Database(settings.database("analytics"), schema=SEEN_SCHEMA.format(consumer="analytics")).transaction() as db:
            received = {event_id for (event_id,) in db.execute("SELECT event_id FROM analytics_seen")}
        owed = {event_id for event_id, at in published if ready_at and at > ready_at + margin_s}
        if owed <= received or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {"ready_at": ready_at, "events_published": len(published), "events_pending": pending,
            "owed_after_ready": len(owed), "received": len(received), "missed": len(owed - received),
            "inventory_pid_before": inventory_pid, "inventory_pid_after": stack.services["inventory"].process.pid,
            "inventory_restarted": stack.services["inventory"].process.poll() is not None}


def latency_headline(run: Run) -> str:
    names = run.locust_result.summary["by_name"] if run.locust_result else {}
    parts = [f"{name.split()[-1]} median {s['median_ms']} ms" for name, s in sorted(names.items(), key=lambda i: int(i[0].split('p')[-1]))]
    return f"{run.params['wiring']}: " + ", ".join(parts) + f"; books {audit_line(run)}"


def audit_line(run: Run) -> str:
    try:
        found = books_of(run)
    except FileNotFoundError:
        return "not audited"
    return (f"{found['effective']:,} of {found['owed']:,} owed e-mails, {found['missing']} missing, "
            f"{found['orphans']} orphans, {found['repeats']} repeats, {found['attempts']:,} attempts")


def books_of(run: Run) -> dict:
    import json
    return json.loads((run.dir / "audit.json").read_text())


def outage_headline(run: Run) -> str:
    summary = run.locust_result.summary if run.locust_result else {}
    return (f"{run.params['wiring']}: {summary.get('failures', 0)} of {summary.get('requests', 0)} stock updates failed; "
            f"settled {run.notes.get('settle_s')} s after the load; books {audit_line(run)}")


def slow_headline(run: Run) -> str:
    from load.rest_vs_messaging.analysis import slow
    rates = slow({"dir": run.dir})
    return (f"{run.params['wiring']}: {rates['updates_per_s']:.1f} stock updates/s, {rates['emails_per_s']:.1f} "
            f"e-mails/s, {headline_for(run, 'restock p1', 'update')}; books {audit_line(run)}")


def new_consumer_headline(run: Run) -> str:
    import json
    path = run.dir / "analytics.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    return (f"analytics received {found.get('received')} events, missed {found.get('missed')} of "
            f"{found.get('owed_after_ready')} published after it was ready; inventory restarted: "
            f"{found.get('inventory_restarted')}; books {audit_line(run)}")


SCENARIOS = {
    "subscribers": Scenario(subscribers_plan, perform_subscribers, latency_headline),
    "outage": Scenario(outage_plan, perform_outage, outage_headline),
    "slow": Scenario(slow_plan, perform_slow, slow_headline),
    "new-consumer": Scenario(new_consumer_plan, perform_new_consumer, new_consumer_headline),
    "brokers": Scenario(brokers_plan, perform_brokers, brokers_headline, needs=("rabbitmq", "redis")),
}
