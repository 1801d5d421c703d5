"""Chapter 4's benchmark scenarios: what the harness runs for ``python -m load run 04-message-queues``.

- ``latency`` (closed loop, one user, so nothing queues): each variant's own latency, the
  article's 150 / 100 / 50 ms.
- ``saturation`` (closed loop, more users than threads, no wait): throughput when the service is
  never idle, the article's 7 / 10 / 20 a second for one thread, then with several threads.
- ``backlog`` (open loop, Poisson arrivals): the queued variant's hidden cost, the time until the
  e-mail is really sent and the backlog over time, below and above what one worker can send.
"""
import csv
import os
import sys
import time
import urllib.parse
from pathlib import Path

from demos.message_queues.store import Database, redacted
from load.harness import Harness, Run, get_json, http_ready, log_ready
from load.servers import create_database, drop_database, free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
VARIANTS = ("serial", "parallel", "queued")

SIZES = {
    #            seconds per run, thread counts,   backlog arrival rates (registrations/s), backlog seconds
    "smoke":    dict(seconds=3,  threads=(1, 4),          rates=(5, 15), backlog_seconds=4),
    "default":  dict(seconds=8,  threads=(1, 4, 16),      rates=(5, 15), backlog_seconds=15),
    "workshop": dict(seconds=30, threads=(1, 2, 4, 8, 16, 32), rates=(5, 10, 15, 20), backlog_seconds=60),
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


def latency(h: Harness) -> None:
    """Closed loop, one user: each variant's own latency (article: 150 / 100 / 50 ms)."""
    for variant in VARIANTS:
        with h.run(variant, variant=variant, threads=1, users=1, loop="closed") as run:
            url = start_registration(run, variant, threads=1)
            run.locust(LOCUSTFILE, host=url, users=1, run_time_s=SIZES[h.size]["seconds"])
            save_service_report(run, url)


def saturation(h: Harness) -> None:
    """Closed loop, no wait: throughput by variant and worker threads (article: 7 / 10 / 20 a second)."""
    for threads in SIZES[h.size]["threads"]:
        users = 4 * threads + 4
        for variant in VARIANTS:
            with h.run(f"{variant}-t{threads}", variant=variant, threads=threads, users=users,
                       loop="closed") as run:
                url = start_registration(run, variant, threads=threads)
                run.locust(LOCUSTFILE, host=url, users=users, run_time_s=SIZES[h.size]["seconds"])
                save_service_report(run, url)


def wait_until_sent(run: Run, url: str, timeout_s: float) -> float:
    """Wait (bounded) until every registered user's e-mail and SMS are sent; return the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        audit = get_json(f"{url}/audit")
        if min(audit["sends"].get("email", 0), audit["sends"].get("sms", 0)) >= audit["users"]:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def backlog(h: Harness) -> None:
    """Open loop, Poisson: time until the e-mail is sent and the backlog, one worker process."""
    seconds = SIZES[h.size]["backlog_seconds"]
    for rate in SIZES[h.size]["rates"]:
        # Poisson arrivals at 1/50 s per user: a user is still busy (about 60 ms) when its next
        # arrival is due with probability about 0.1%, well under the 1% that invalidates a run
        # (at 1/20 s, one late arrival in a short 5/s run was already more than 1%)
        users = 50 * rate
        with h.run(f"queued-r{rate}", variant="queued", threads=4, workers=1, users=users,
                   loop="open", arrival_rate=rate) as run:
            url = start_registration(run, "queued", threads=4, workers=1)
            run.locust(LOCUSTFILE, host=url, users=users, arrival_rate=rate, run_time_s=seconds)
            run.notes["drain_s"] = round(wait_until_sent(run, url, timeout_s=4 * seconds + 30), 3)
            save_service_report(run, url)
            write_timeline(run)


def write_timeline(run: Run) -> None:
    """Per user: when registered, when the e-mail and the SMS were really sent (epoch seconds)."""
    rows = Database(run_database_url(run)).timeline()
    with open(run.dir / "timeline.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "registered_at", "email_sent_at", "sms_sent_at"])
        writer.writerows(rows)


SCENARIOS = {"latency": latency, "saturation": saturation, "backlog": backlog}
