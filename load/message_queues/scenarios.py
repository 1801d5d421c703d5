"""Chapter 4's benchmark scenarios: what the harness runs for ``python -m load run 04-message-queues``.

- ``latency`` (closed loop, one user, so nothing queues): each variant's own latency, the
  article's 150 / 100 / 50 ms.
- ``saturation`` (closed loop, more users than threads, no wait): throughput when the service is
  never idle, the article's 7 / 10 / 20 a second for one thread, then with several threads.
- ``backlog`` (open loop, Poisson arrivals): the queued variant's hidden cost, the time until the
  e-mail is really sent and the backlog over time, below and above what one worker can send.
- ``decoupling`` and ``peak-shaving`` (open loop): sections 2 and 3, in shop_scenarios.py.
"""
import csv
import os
import sys
import time
import urllib.parse
from pathlib import Path

from demos.message_queues.store import Database, redacted
from load.harness import Run, Scenario, get_json, headline_for, http_ready, log_ready
from load.message_queues import shop_scenarios
from load.servers import create_database, drop_database, free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
VARIANTS = ("serial", "parallel", "queued")

# One shape for every chapter: SIZES[size][scenario] holds what that scenario's plan needs.
# Section 2's kill lasts 10 s at default, the article's outage; section 3's writer takes 50 a
# second and the burst is 500 a second on every machine.
SIZES = {
    "smoke": {
        "latency": dict(seconds=1),
        "saturation": dict(seconds=2, threads=(1,)),
        "backlog": dict(seconds=3, rates=(5,)),
        "decoupling": dict(rate=10, seconds=3, kill_after_s=2, down_s=1),
        "peak-shaving": dict(burst_rate=500, write_rate=50, seconds=1, max_queue=50, users=300, shaved_users=50,
                             skip=("direct", "shaved-kill")),
        "pubsub": dict(rate=100, seconds=1, work_ms=10, users=100, runs=(("competing", 2),)),
        "log-pipeline": dict(rate=50, seconds=2, users=100, slow_work_ms=10, kill_after_s=1.5),
    },
    "default": {
        "latency": dict(seconds=3),
        "saturation": dict(seconds=4, threads=(1, 16)),
        "backlog": dict(seconds=8, rates=(5, 15)),
        "decoupling": dict(rate=20, seconds=15, kill_after_s=3.5, down_s=10),
        "peak-shaving": dict(burst_rate=500, write_rate=50, seconds=3, max_queue=50, users=500, shaved_users=50),
        "pubsub": dict(rate=200, seconds=2, work_ms=10, users=400,
                       runs=(("competing", 1), ("competing", 4), ("fanout", 4))),
        "log-pipeline": dict(rate=100, seconds=4, users=400, slow_work_ms=20, kill_after_s=3),
    },
    "workshop": {
        "latency": dict(seconds=30),
        "saturation": dict(seconds=30, threads=(1, 2, 4, 8, 16, 32)),
        "backlog": dict(seconds=60, rates=(5, 10, 15, 20)),
        "decoupling": dict(rate=50, seconds=30, kill_after_s=5, down_s=10),
        "peak-shaving": dict(burst_rate=500, write_rate=50, seconds=20, max_queue=500, users=800, shaved_users=200),
        "pubsub": dict(rate=300, seconds=10, work_ms=10, users=60,
                       runs=tuple((wiring, n) for wiring in ("competing", "fanout") for n in (1, 2, 4))),
        "log-pipeline": dict(rate=200, seconds=20, users=400, slow_work_ms=10, kill_after_s=8),
    },
}


def run_database_url(run: Run) -> str:
    """The run's own database, so that every run starts empty: SQLite in the run's folder, or, with
    ``DATABASE_URL=postgresql://...``, a database on that server named after the run
    (``<scenario>_<run>_rep-<k>``), kept afterwards like the SQLite file."""
    given = os.environ.get("DATABASE_URL", "")
    if given.startswith(("postgresql://", "postgres://")):
        return urllib.parse.urlsplit(given)._replace(path="/" + "_".join(run.dir.parts[-3:])).geturl()
    return f"sqlite:///{run.dir / 'data' / 'registrations.db'}"


def start_registration(run: Run, variant: str, threads: int, workers: int = 1) -> str:
    """Start one variant (and, for ``queued``, its workers) with its data in the run's folder
    (or its own PostgreSQL database)."""
    data = run.dir / "data"
    database_url = run_database_url(run)
    if not database_url.startswith("sqlite:"):
        name = urllib.parse.urlsplit(database_url).path[1:]
        drop_database(os.environ["DATABASE_URL"], name)   # a rerun replaces the run, as it does its folder
        create_database(os.environ["DATABASE_URL"], name)
    run.notes["database_url"] = redacted(database_url)
    env = {"DATA_DIR": str(data), "DATABASE_URL": database_url}
    if variant == "queued":
        for number in range(workers):
            log = run.dir / "logs" / f"worker-{number}.log"
            run.service(f"worker-{number}", [sys.executable, "-m", "demos.message_queues.worker"],
                        env=env, ready=log_ready(log, "worker ready"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run.service(variant, [sys.executable, "-m", f"demos.message_queues.{variant}",
                          "--port", str(port), "--threads", str(threads)],
                env=env, ready=http_ready(f"{url}/health"))
    run.notes["broker_url"] = os.environ.get("BROKER_URL") or "filesystem (embedded default)"
    return url


def save_service_report(run: Run, url: str) -> None:
    run.save_json("service", get_json(f"{url}/stats"))
    run.save_json("audit", get_json(f"{url}/audit"))


def latency_plan(size: str) -> dict:
    """Closed loop, one user, so nothing queues: each variant's own latency (article: 150 / 100 / 50 ms)."""
    seconds = SIZES[size]["latency"]["seconds"]
    return {variant: dict(variant=variant, threads=1, users=1, loop="closed", seconds=seconds)
            for variant in VARIANTS}


def saturation_plan(size: str) -> dict:
    """Closed loop, more users than threads, no wait: throughput by variant and worker threads
    (article: 7 / 10 / 20 a second with one thread)."""
    plan = SIZES[size]["saturation"]
    return {f"{variant}-t{threads}": dict(variant=variant, threads=threads, users=4 * threads + 4,
                                          loop="closed", seconds=plan["seconds"])
            for threads in plan["threads"] for variant in VARIANTS}


def backlog_plan(size: str) -> dict:
    """Open loop, Poisson arrivals: the queued variant's hidden cost, the time until the e-mail is
    really sent and the backlog over time, below and above what one worker process can send."""
    plan = SIZES[size]["backlog"]
    # Poisson arrivals at 1/50 s per user: a user is still busy (about 60 ms) when its next
    # arrival is due with probability about 0.1%, well under the 1% that invalidates a run
    # (at 1/20 s, one late arrival in a short 5/s run was already more than 1%)
    return {f"queued-r{rate}": dict(variant="queued", threads=4, workers=1, users=50 * rate, loop="open",
                                    arrival_rate=rate, seconds=plan["seconds"])
            for rate in plan["rates"]}


def register(run: Run) -> None:
    """One run: the variant (and its workers), Locust's registrations, then what the service counted;
    with open-loop arrivals, also the wait until every e-mail is sent and the per-user timeline."""
    p = run.params
    url = start_registration(run, p["variant"], threads=p["threads"], workers=p.get("workers", 1))
    run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"],
               arrival_rate=p.get("arrival_rate", 0.0))
    if p["loop"] == "open":
        run.notes["drain_s"] = round(wait_until_sent(run, url, timeout_s=4 * p["seconds"] + 30), 3)
    save_service_report(run, url)
    if p["loop"] == "open":
        write_timeline(run)


def registration_latency(run: Run) -> str:
    return headline_for(run, "/register", "registration")


def registration_rate(run: Run) -> str:
    summary = run.locust_result.summary if run.locust_result else {}
    return f"{summary.get('throughput_per_s', 0)} registrations/s, {registration_latency(run)}"


def email_delay(run: Run) -> str:
    return f"{registration_latency(run)}; every e-mail and SMS sent {run.notes.get('drain_s')} s after the load"


def wait_until_sent(run: Run, url: str, timeout_s: float) -> float:
    """Wait (bounded) until every registered user's e-mail and SMS are sent; return the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        audit = get_json(f"{url}/audit")
        if min(audit["sends"].get("email", 0), audit["sends"].get("sms", 0)) >= audit["users"]:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def write_timeline(run: Run) -> None:
    """Per user: when registered, when the e-mail and the SMS were really sent (epoch seconds)."""
    rows = Database(run_database_url(run)).timeline()
    with open(run.dir / "timeline.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "registered_at", "email_sent_at", "sms_sent_at"])
        writer.writerows(rows)


def decoupling_plan(size: str) -> dict:
    """Open loop, both wirings at once on one inventory, SIGKILLed for 10 s (default size): the
    direct call's orders fail, the outbox's are confirmed and deducted once inventory is back
    (section 2, load/message_queues/shop_scenarios.py)."""
    return shop_scenarios.decoupling_plan_for(SIZES[size]["decoupling"])


def peak_shaving_plan(size: str) -> dict:
    """Open loop, a flash sale of 500 purchases a second at a writer of 50 a second: direct
    (collapse), shaved (a bounded queue, a fast 429, writes flat), shaved with its consumer
    SIGKILLed mid-burst (section 3, load/message_queues/shop_scenarios.py)."""
    return shop_scenarios.peak_shaving_plan_for(SIZES[size]["peak-shaving"])


def pubsub_plan(size: str) -> dict:
    """Open loop, messages at 200 a second (default size) to consumers that spend 10 ms on each:
    competing for one queue (1 and 4 consumers) or each subscribed to all (fanout, 4); the whole
    matrix, 1, 2 and 4 of each, at workshop size (section 4, load/message_queues/shop_scenarios.py)."""
    return shop_scenarios.pubsub_plan_for(SIZES[size]["pubsub"])


def log_pipeline_plan(size: str) -> dict:
    """Open loop, 100 requests a second (default size), each logging a line shipped through the
    broker: with no aggregator, and with one at 20 ms a line (half the rate) SIGKILLed for a
    second: the application's latency, the backlog, what the kill lost (section 5)."""
    return shop_scenarios.log_pipeline_plan_for(SIZES[size]["log-pipeline"])


SCENARIOS = {
    "latency": Scenario(latency_plan, register, registration_latency),
    "saturation": Scenario(saturation_plan, register, registration_rate),
    "backlog": Scenario(backlog_plan, register, email_delay),
    "decoupling": Scenario(decoupling_plan, shop_scenarios.decouple, shop_scenarios.decoupling_headline),
    "peak-shaving": Scenario(peak_shaving_plan, shop_scenarios.shave, shop_scenarios.shaving_headline),
    "pubsub": Scenario(pubsub_plan, shop_scenarios.fan, shop_scenarios.pubsub_headline),
    "log-pipeline": Scenario(log_pipeline_plan, shop_scenarios.ship_logs, shop_scenarios.logs_headline),
}
