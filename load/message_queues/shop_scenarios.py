"""Sections 2 and 3 of chapter 4's scenarios (load/message_queues/scenarios.py lists them all).

- ``decoupling`` (open loop): one inventory serves both wirings at once, the direct order service
  and the queued one (outbox, broker), with the same arrivals; inventory is SIGKILLed for
  ``down_s`` seconds mid-run. Per wiring: success and latency over time; for the queued one, the
  backlog of confirmed orders not yet decided, and the audit (confirmed = deducted + cancelled,
  stock never below zero). Each wiring's scarce product runs out during the run.
- ``peak-shaving`` (open loop): a burst of ``burst_rate`` purchases a second at a writer that takes
  ``write_rate``; direct (every request waits for the writer), shaved (a bounded queue, 429 when
  full, a consumer at the writer's rate), and shaved with the consumer SIGKILLed mid-burst.
- ``pubsub`` (open loop): messages at a fixed rate to 1, 2 or 4 consumers that compete for one
  queue or each subscribe to all; what they handle a second, each message counted per receipt.
- ``log-pipeline`` (open loop): an application shipping a log line a request through the broker,
  with no aggregator and with a slow one (SIGKILLed for a second): the application's latency, the
  backlog, what the kill lost.
"""
import csv
import json
import os
import sys
import time
from pathlib import Path

from demos.message_queues import flash_sale, logs, orders, pubsub
from demos.message_queues.store import Database
from load.harness import Run, get_json, headline_for, http_ready, log_ready
from load.servers import free_port

LOCUSTFILE = Path(__file__).with_name("shop_locustfile.py")


def shop_env(run: Run) -> dict:
    return {"DATA_DIR": str(run.dir / "data"), "BROKER_URL": os.environ.get("BROKER_URL", ""),
            "QUEUE_PREFIX": f"shop-{run.dir.parent.name}-{os.getpid()}"}


def wait_until(condition, timeout_s: float, every_s: float = 0.2) -> float:
    """Wait (bounded) until ``condition()``; return the wait in seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s and not condition():
        time.sleep(every_s)
    return round(time.monotonic() - started, 3)


def write_rows(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


# --- section 2: decoupling ---------------------------------------------------------------------

def decoupling_plan_for(plan: dict) -> dict:
    rate, seconds = plan["rate"], plan["seconds"]
    scarce = int(0.25 * rate * seconds / 2)   # half the scarce orders a wiring gets: the rest run out
    return {"both-wirings": dict(rate=rate, seconds=seconds, users=max(10, 10 * rate), loop="open",
                                 kill_after_s=plan["kill_after_s"], down_s=plan["down_s"], scarce_stock=scarce,
                                 expect={"failures": "the direct wiring's orders fail while inventory is down"})}


def decouple(run: Run) -> None:
    p = run.params
    env = {**shop_env(run), "INITIAL_STOCK": f"pear={p['scarce_stock']},plum={p['scarce_stock']}"}
    inventory_port = free_port()
    inventory_url = f"http://127.0.0.1:{inventory_port}"
    inventory = run.service("inventory", [sys.executable, "-m", "demos.message_queues.inventory",
                                          "--port", str(inventory_port), "--consume"],
                            env=env, ready=http_ready(f"{inventory_url}/health"))
    urls = {}
    for wiring in ("direct", "queued"):
        port = free_port()
        urls[wiring] = f"http://127.0.0.1:{port}"
        run.service(f"orders-{wiring}", [sys.executable, "-m", "demos.message_queues.orders", "--wiring", wiring,
                                         "--port", str(port), "--inventory-url", inventory_url],
                    env=env, ready=http_ready(f"{urls[wiring]}/health"))
    run.notes["broker_url"] = env["BROKER_URL"] or "filesystem (embedded default)"
    with run.sampling(f"{urls['queued']}/stats", every_s=0.5, name="backlog"):
        with run.fault(inventory, kill_after_s=p["kill_after_s"], down_s=p["down_s"]):
            run.locust(LOCUSTFILE, host=urls["direct"], users=p["users"], run_time_s=p["seconds"],
                       arrival_rate=p["rate"], extra_args=("--queued-host", urls["queued"]))
        undecided = lambda: get_json(f"{urls['queued']}/stats")["orders"].get("confirmed", 0)   # noqa: E731
        run.notes["drain_s"] = wait_until(lambda: undecided() == 0, 30)
    run.save_json("audit", {"inventory": get_json(f"{inventory_url}/audit"),
                            **{wiring: get_json(f"{url}/stats") for wiring, url in urls.items()}})
    database = Database(f"sqlite:///{run.dir / 'data' / 'orders-queued.db'}", schema=orders.SCHEMA)
    write_rows(run.dir / "orders.csv", ["id", "product", "quantity", "status", "created_at", "resolved_at"],
               orders.Orders(database, "queued").timeline())


def decoupling_headline(run: Run) -> str:
    audit = json.loads((run.dir / "audit.json").read_text())
    queued, inventory = audit["queued"]["orders"], audit["inventory"]
    return (f"queued: {sum(queued.values())} confirmed, {queued.get('deducted', 0)} deducted, "
            f"{queued.get('cancelled', 0)} cancelled, drained {run.notes.get('drain_s')} s after; "
            f"stock left {inventory['stock']}; direct: {audit['direct']['orders']}")


# --- section 3: peak shaving -------------------------------------------------------------------

def peak_shaving_plan_for(plan: dict) -> dict:
    common = dict(burst_rate=plan["burst_rate"], write_rate=plan["write_rate"], seconds=plan["seconds"],
                  max_queue=plan["max_queue"], users=plan["users"], loop="open")
    overload = "the burst is ten times the writer's rate, on purpose"
    runs = {
        "direct": dict(common, mode="direct", expect={"overload": overload,
                                                      "failures": "requests time out or get 503 from the writer"}),
        # fewer users: each holds a keep-alive connection, and the front's select() loop pays for
        # every one; an answer in milliseconds needs no more than this to keep the pace
        "shaved": dict(common, mode="shaved", users=plan["shaved_users"], expect={"overload": overload}),
        "shaved-kill": dict(common, mode="shaved", users=plan["shaved_users"], kill_consumer=True,
                            expect={"overload": overload}),
    }
    for name in plan.get("skip", ()):   # smoke: the kill is the tests' (test_message_queues_flash_sale.py)
        del runs[name]
    return runs


def shave(run: Run) -> None:
    p = run.params
    env = {**shop_env(run), "WRITE_RATE": str(p["write_rate"])}
    consumer = None
    if p["mode"] == "shaved":
        consumer = run.service("consumer", [sys.executable, "-m", "demos.message_queues.flash_sale", "consume"],
                               env=env, ready=log_ready(run.dir / "logs" / "consumer.log", "worker ready"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run.service(f"front-{p['mode']}", [sys.executable, "-m", "demos.message_queues.flash_sale", "serve",
                                       "--mode", p["mode"], "--port", str(port), "--max-queue", str(p["max_queue"])],
                env=env, ready=http_ready(f"{url}/health"))
    run.notes["broker_url"] = env["BROKER_URL"] or "filesystem (embedded default)"
    with run.sampling(f"{url}/stats", every_s=0.25, name="queue"):
        if p.get("kill_consumer"):
            # Locust takes a second or two to start and spawn: the kill falls in the burst's second half
            with run.fault(consumer, kill_after_s=p["seconds"] / 2 + 1, down_s=1.0):
                run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"],
                           arrival_rate=p["burst_rate"], extra_args=("--sale",))
        else:
            run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"],
                       arrival_rate=p["burst_rate"], extra_args=("--sale",))
        if p["mode"] == "shaved":
            run.notes["drain_s"] = wait_until(lambda: drained(url), 4 * p["max_queue"] / p["write_rate"] + 10)
    stats = get_json(f"{url}/stats")
    run.save_json("audit", stats)
    if p["mode"] == "shaved":
        run.notes["lost"] = stats["accepted"] - stats["written"]
    database = Database(f"sqlite:///{run.dir / 'data' / 'sale.db'}", schema=flash_sale.SCHEMA)
    with database.transaction() as db:
        rows = db.execute("SELECT accepted_at, written_at FROM sale_orders ORDER BY written_at").fetchall()
    write_rows(run.dir / "orders.csv", ["accepted_at", "written_at"], rows)


def drained(url: str, quiet_s: float = 1.0) -> bool:
    """Every accepted order written; or (an order lost) the queue empty and no write for ``quiet_s``."""
    before = get_json(f"{url}/stats")
    if before["written"] >= before["accepted"]:
        return True
    if before["queue_length"]:
        return False
    time.sleep(quiet_s)
    after = get_json(f"{url}/stats")
    return after["written"] == before["written"] and after["queue_length"] == 0


def shaving_headline(run: Run) -> str:
    audit = json.loads((run.dir / "audit.json").read_text())
    summary = run.locust_result.summary["by_name"] if run.locust_result else {}
    rejected = summary.get("/buy rejected", {})
    return (f"{audit['written']} written ({audit.get('accepted', '-')} accepted, {audit.get('rejected', '-')} rejected,"
            f" lost {run.notes.get('lost', '-')}); rejection p99 {rejected.get('p99_ms')} ms; "
            f"{summary.get('/buy', {}).get('failures', 0)} failed")


# --- section 4: point-to-point against publish/subscribe ---------------------------------------

def pubsub_plan_for(plan: dict) -> dict:
    return {f"{wiring}-c{consumers}": dict(wiring=wiring, consumers=consumers, rate=plan["rate"],
                                           seconds=plan["seconds"], work_ms=plan["work_ms"], users=plan["users"],
                                           loop="open")
            for wiring, consumers in plan["runs"]}


def fan(run: Run) -> None:
    """N consumers (competing for one queue, or each subscribed), a publisher, Locust's messages;
    then the wait until every consumer has what it should, and every receipt in received.csv."""
    p = run.params
    env = shop_env(run)
    names = [f"c{k}" for k in range(1, p["consumers"] + 1)]
    for name in names:
        run.service(f"consumer-{name}", [sys.executable, "-m", "demos.message_queues.pubsub", "consume", "--wiring",
                                         p["wiring"], "--name", name, "--work-ms", str(p["work_ms"])],
                    env=env, ready=log_ready(run.dir / "logs" / f"consumer-{name}.log", "worker ready"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run.service("publisher", [sys.executable, "-m", "demos.message_queues.pubsub", "serve", "--wiring", p["wiring"],
                              "--port", str(port)], env=env, ready=http_ready(f"{url}/health"))
    run.notes["broker_url"] = env["BROKER_URL"] or "filesystem (embedded default)"
    run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"], arrival_rate=p["rate"],
               extra_args=("--news",))
    published = get_json(f"{url}/stats")["published"]
    got = lambda: {name: pubsub.received(env["DATA_DIR"], name) for name in names}   # noqa: E731
    if p["wiring"] == "competing":
        done = lambda: sum(len(numbers) for numbers in got().values()) >= published   # noqa: E731
    else:
        done = lambda: all(len(numbers) >= published for numbers in got().values())   # noqa: E731
    run.notes["drain_s"] = wait_until(done, 60)
    run.notes["published"] = published
    rows = []
    for name in names:
        path = Path(env["DATA_DIR"]) / f"received-{name}.csv"
        if path.exists():
            rows += [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    write_rows(run.dir / "received.csv", ["n", "consumer", "pid", "received_at"], rows)


def pubsub_headline(run: Run) -> str:
    rows = (run.dir / "received.csv").read_text().splitlines()[1:]
    return (f"{run.notes['published']} published, {len(rows)} received by {run.params['consumers']} consumer(s), "
            f"the last {run.notes['drain_s']} s after the load")


# --- section 5: a log pipeline -----------------------------------------------------------------

def log_pipeline_plan_for(plan: dict) -> dict:
    common = dict(rate=plan["rate"], seconds=plan["seconds"], users=plan["users"], loop="open")
    return {"no-aggregator": dict(common, aggregator=False),
            "slow-aggregator": dict(common, aggregator=True, work_ms=plan["slow_work_ms"],
                                    kill_after_s=plan["kill_after_s"])}


def ship_logs(run: Run) -> None:
    """The application under open-loop requests, with no aggregator or a slow one SIGKILLed for a
    second mid-run; the queue sampled; then (with an aggregator) the wait until the backlog is
    gone, and what was shipped against what was counted."""
    p = run.params
    env = shop_env(run)
    aggregator = None
    if p["aggregator"]:
        aggregator = run.service("aggregator", [sys.executable, "-m", "demos.message_queues.logs", "aggregate",
                                                "--work-ms", str(p["work_ms"])],
                                 env=env, ready=log_ready(run.dir / "logs" / "aggregator.log", "worker ready"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run.service("app", [sys.executable, "-m", "demos.message_queues.logs", "app", "--port", str(port)],
                env=env, ready=http_ready(f"{url}/health"))
    run.notes["broker_url"] = env["BROKER_URL"] or "filesystem (embedded default)"
    with run.sampling(f"{url}/stats", every_s=0.25, name="queue"):
        if aggregator is not None:
            with run.fault(aggregator, kill_after_s=p["kill_after_s"], down_s=1.0):
                run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"], arrival_rate=p["rate"],
                           extra_args=("--logs",))
            database = Database(f"sqlite:///{run.dir / 'data' / 'logs.db'}", schema=logs.SCHEMA)
            counted = lambda: logs.Aggregator(database).audit()["lines"]   # noqa: E731
            stats = lambda: get_json(f"{url}/stats")   # noqa: E731
            run.notes["drain_s"] = wait_until(lambda: stats()["waiting"] == 0 and (
                counted() >= stats()["shipped"] or (stats()["queue_length"] == 0 and quiet(counted))), 60)
        else:
            run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"], arrival_rate=p["rate"],
                       extra_args=("--logs",))
    audit = {"app": get_json(f"{url}/stats")}
    if aggregator is not None:
        audit["aggregator"] = logs.Aggregator(database).audit()
        run.notes["lost"] = audit["app"]["shipped"] - audit["aggregator"]["lines"]
    run.save_json("audit", audit)


def quiet(count, for_s: float = 1.0) -> bool:
    """``count()`` the same before and after ``for_s`` seconds."""
    before = count()
    time.sleep(for_s)
    return count() == before


def logs_headline(run: Run) -> str:
    audit = json.loads((run.dir / "audit.json").read_text())
    line = f"{headline_for(run, '/page', 'page')}; {audit['app']['shipped']} lines shipped"
    if "aggregator" in audit:
        line += f", {audit['aggregator']['lines']} counted (lost {run.notes['lost']}), drained {run.notes['drain_s']} s after"
    return line
