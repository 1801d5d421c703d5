"""Chapter 3's benchmark scenarios: what the harness runs for ``python -m load run 03-coupon-system``.

- ``flash-crowd`` (open loop, Poisson arrivals; correctness): thousands of distinct users at a
  batch of far fewer coupons, some clicking twice at once, some retrying; after each run the
  audit counts the raw rows (oversold, double claims) and checks that every success has its row.
- ``throughput`` (open loop, a batch larger than the crowd can empty): claims a second and their
  latency per strategy, and where each strategy's time goes.
- ``bulk`` (open loop): claim latency with and without a bulk issuance running through the queue,
  the bulk path throttled (``BULK_RATE``).

Every strategy gets its own database (SQLite in the run's folder, or a database named after the
run on ``DATABASE_URL``'s PostgreSQL) and, for ``reservation``, its own Redis with its
append-only file (or ``REDIS_URL``'s) and a consumer writing the rows.
"""
import contextlib
import csv
import os
import sys
import time
import urllib.parse
import urllib.request
import json
from pathlib import Path

from demos.coupon_system.store import Database, redacted
from load.harness import Run, Scenario, get_json, headline_for, http_ready, log_ready, wait_for
from load.results import read_csv
from load.servers import database_for_run, free_port, running

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STRATEGIES = ("naive", "atomic", "reservation")
RACE_WINDOW_MS = 5          # the naive strategy's labelled window between read and write
BIG_STOCK = 10**8           # a batch the crowd cannot empty
WRITE_RATE = 200           # rows a second the reservation strategy's consumer writes (below the crowd's peak)

SIZES = {
    "smoke": {
        "flash-crowd": dict(users=1000, stock=100, rate=300, databases=("sqlite",), processes=1),
        "throughput": dict(rates=(300,), seconds=2, databases=("sqlite",), service_processes=(1,)),
        "bulk": dict(rate=60, seconds=3, bulk_users=300, bulk_rate=200),
    },
    "default": {
        "flash-crowd": dict(users=10_000, stock=1000, rate=400, databases=("sqlite",), processes=1),
        "throughput": dict(rates=(700,), seconds=6, databases=("sqlite",), service_processes=(1,)),
        "bulk": dict(rate=200, seconds=9, bulk_users=1350, bulk_rate=150),
    },
    "workshop": {
        "flash-crowd": dict(users=20_000, stock=1000, rate=500, databases=("sqlite", "postgres"), processes=2),
        "throughput": dict(rates=(200, 400, 800, 1200), seconds=20, databases=("sqlite", "postgres"),
                           service_processes=(1, 2)),
        "bulk": dict(rate=150, seconds=30, bulk_users=10_000, bulk_rate=300),
    },
}


# --- services ---------------------------------------------------------------------------------

def run_database_url(run: Run, database: str, stack: contextlib.ExitStack) -> str:
    """The run's own, empty database: SQLite in the run's folder, or on PostgreSQL (``DATABASE_URL``'s
    server, else one started for the run) a database named after the run."""
    if database == "sqlite":
        return f"sqlite:///{run.dir / 'data' / 'coupons.db'}"
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith(("postgresql://", "postgres://")):
        # its own temp folder: a Unix socket path under the run's folder would pass 107 characters
        server = stack.enter_context(running("postgres")).url
    return database_for_run(server, run.dir)


def start_strategy(run: Run, stack: contextlib.ExitStack, strategy: str, database: str = "sqlite",
                   processes: int = 1, bulk: bool = False, env: dict | None = None) -> tuple[str, dict]:
    """Start the strategy's service (``processes`` of them sharing one port), with Redis and the
    consumer for ``reservation``; return its URL and the environment it got."""
    env = {"DATA_DIR": str(run.dir / "data"), "DATABASE_URL": run_database_url(run, database, stack),
           "BROKER_URL": os.environ.get("BROKER_URL", ""), **(env or {})}
    if strategy == "naive":
        env["RACE_WINDOW_MS"] = str(RACE_WINDOW_MS)
    if strategy == "reservation":
        env["REDIS_URL"] = os.environ.get("REDIS_URL") or stack.enter_context(
            running("redis", str(run.dir / "data" / "servers"), appendonly=True)).url
        env["WRITE_RATE"] = str(WRITE_RATE)
        run.service("consumer", [sys.executable, "-m", "demos.coupon_system.consumer"], env=env,
                    ready=log_ready(run.dir / "logs" / "consumer.log", "consumer ready"))
    if bulk:
        run.service("bulk", [sys.executable, "-m", "demos.coupon_system.bulk", "--strategy", strategy], env=env,
                    ready=log_ready(run.dir / "logs" / "bulk.log", "bulk worker ready"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for number in range(processes):
        run.service(f"{strategy}-{number}" if processes > 1 else strategy,
                    [sys.executable, "-m", f"demos.coupon_system.{strategy}", "--port", str(port), "--threads", "8",
                     *(["--reuse-port"] if processes > 1 else []), *(["--bulk"] if bulk else [])],
                    env=env, ready=http_ready(f"{url}/health"))
    run.notes.update(database_url=redacted(env["DATABASE_URL"]), broker_url=env["BROKER_URL"] or "filesystem (embedded)",
                     redis_url=env.get("REDIS_URL", ""))
    return url, env


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def create_batch(url: str, stock: int) -> int:
    return post_json(f"{url}/batches", {"name": "flash sale", "stock": stock,
                                        "rules": [{"rule": "percentage", "percent": 50, "cap_cents": 2000}]})["id"]


def wait_for_rows(run: Run, url: str, timeout_s: float) -> float:
    """The reservation strategy: wait (bounded) until every reservation has its row; the wait (s)."""
    started = time.monotonic()
    def drained():
        audit = get_json(f"{url}/audit")
        holders = sum(batch["holders"] for batch in audit.get("reserved", {}).values() if isinstance(batch, dict))
        return audit["coupons"] >= holders
    wait_for(drained, timeout_s, "every reservation's row to be written", interval_s=0.2)
    return round(time.monotonic() - started, 3)


def successes(run: Run) -> list[dict]:
    return [row for path in sorted((run.dir / "raw").glob("successes-*.csv")) for row in read_csv(path)]


def save_reports(run: Run, url: str, database_url: str) -> None:
    """What the service counted, the raw-row audit (with every success checked against the rows)
    and, for the flash crowd, when each coupon was granted and its row written (``writes.csv``)."""
    run.save_json("service", get_json(f"{url}/stats"))
    audit = get_json(f"{url}/audit")
    database = Database(database_url, one_per_user=False)
    codes, given = database.codes(), successes(run)
    audit["successes"] = len(given)
    audit["successes_without_row"] = sum(row["code"] not in codes for row in given)
    audit["users_given_two_codes"] = sum(1 for user, n in _codes_per_user(given).items() if n > 1)
    run.save_json("audit", audit)
    if run.params["stock"] >= BIG_STOCK:
        return   # the write rate over time is the flash crowd's figure
    with open(run.dir / "writes.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["reserved_at", "issued_at", "via"])
        writer.writerows(database.issue_times())


def _codes_per_user(given: list[dict]) -> dict:
    codes: dict[str, set] = {}
    for row in given:
        codes.setdefault(row["user"], set()).add(row["code"])
    return {user: len(found) for user, found in codes.items()}


# --- plans ------------------------------------------------------------------------------------

MAX_USERS = 500   # one connection each: waitress polls with select(), which stops at 1,024 descriptors


def users_for(rate: float) -> int:
    """Locust users for open-loop arrivals at ``rate``: about one arrival every 2 s per user, so a
    user is rarely still busy when its next arrival is due (at most MAX_USERS)."""
    return int(min(MAX_USERS, max(20, 2 * rate)))


def flash_crowd_plan(size: str) -> dict:
    """Open loop (Poisson arrivals), correctness: distinct users at a batch of far fewer coupons,
    10% clicking twice at once and 20% retrying the same claim; the audit counts oversold coupons,
    double claims and successes without a row (article: never oversell; ours: 0 for the correct
    strategies, and the naive one shows why)."""
    p = SIZES[size]["flash-crowd"]
    return {f"{strategy}-{database}": dict(strategy=strategy, database=database, arrivals=p["users"], stock=p["stock"],
                                           arrival_rate=p["rate"], users=users_for(p["rate"]),
                                           seconds=round(1.1 * p["users"] / p["rate"], 1), processes=p["processes"],
                                           double_click=0.1, retry=0.2, loop="open",
                                           expect={"overload": "a flash crowd: more arrive than the service serves"},
                                           race_window_ms=RACE_WINDOW_MS if strategy == "naive" else 0,
                                           write_rate=WRITE_RATE if strategy == "reservation" else 0)
            for database in p["databases"] for strategy in STRATEGIES}


def throughput_plan(size: str) -> dict:
    """Open loop at stepped rates on a batch the crowd cannot empty: claims a second and their
    latency per strategy, database and service processes, and where the time goes (web tier,
    database, Redis, broker)."""
    p = SIZES[size]["throughput"]
    return {f"{strategy}-{database}-p{processes}-r{rate}": dict(
                strategy=strategy, database=database, service_processes=processes, arrival_rate=rate,
                users=users_for(rate), seconds=p["seconds"], stock=BIG_STOCK, processes=1 if rate < 600 else 2,
                double_click=0.0, retry=0.0, loop="open", race_window_ms=RACE_WINDOW_MS if strategy == "naive" else 0,
                expect={"overload": "the rate is stepped past what the strategy serves: claims/s is its capacity"})
            for database in p["databases"] for processes in p["service_processes"] for rate in p["rates"]
            for strategy in STRATEGIES}


def bulk_plan(size: str) -> dict:
    """Open loop: claim latency on the atomic strategy alone, then while a bulk issuance to
    thousands of users runs through the queue, throttled (``BULK_RATE``) so claims slow by at most 20%."""
    p = SIZES[size]["bulk"]
    common = dict(strategy="atomic", database="sqlite", arrival_rate=p["rate"], users=users_for(p["rate"]),
                  seconds=p["seconds"], stock=BIG_STOCK, processes=1, double_click=0.0, retry=0.0, loop="open",
                  bulk_rate=p["bulk_rate"])
    return {"claims-alone": dict(common, bulk_users=0),
            f"claims-with-bulk-{p['bulk_users']}": dict(common, bulk_users=p["bulk_users"])}


# --- one run ----------------------------------------------------------------------------------

def crowd(run: Run) -> None:
    """One run: the strategy's services, a batch, the crowd, then the drain (reservation) and the audit."""
    p = run.params
    with contextlib.ExitStack() as stack:
        url, env = start_strategy(run, stack, p["strategy"], p["database"], p.get("service_processes", 1),
                                  bulk=bool(p.get("bulk_users")), env={"BULK_RATE": str(p.get("bulk_rate", 200))})
        batch_id = create_batch(url, p["stock"])
        if p.get("bulk_users"):
            bulk_batch = create_batch(url, BIG_STOCK)
            users = [f"member-{n}" for n in range(p["bulk_users"])]
            run.notes["bulk_job"] = post_json(f"{url}/batches/{bulk_batch}/bulk", {"users": users})["job"]
        extra = ("--batch-id", str(batch_id), "--double-click", str(p["double_click"]), "--retry", str(p["retry"]))
        with run.sampling(f"{url}/bulk/{run.notes['bulk_job']}" if p.get("bulk_users") else f"{url}/stats",
                          every_s=1.0):
            run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"],
                       arrival_rate=p["arrival_rate"], processes=p["processes"], extra_args=extra)
        if p["strategy"] == "reservation":
            run.notes["drain_s"] = wait_for_rows(run, url, timeout_s=120)
        save_reports(run, url, env["DATABASE_URL"])
        run.stop()   # the services go before the servers they use


def audit_line(run: Run) -> str:
    audit = json.loads((run.dir / "audit.json").read_text()) if (run.dir / "audit.json").exists() else {}
    return (f"{headline_for(run, 'claim', 'claim')}; {audit.get('coupons', '?'):,} coupons for a stock of "
            f"{run.params['stock']:,}: {audit.get('oversold')} oversold, {audit.get('double_claims')} double claims, "
            f"{audit.get('successes_without_row')} successes without a row")


def claim_rate(run: Run) -> str:
    summary = run.locust_result.summary if run.locust_result else {}
    return f"{summary.get('throughput_per_s', 0)} claims/s, {headline_for(run, 'claim', 'claim')}"


SCENARIOS = {
    "flash-crowd": Scenario(flash_crowd_plan, crowd, audit_line, needs=("redis",)),
    "throughput": Scenario(throughput_plan, crowd, claim_rate, needs=("redis",)),
    "bulk": Scenario(bulk_plan, crowd, claim_rate),
}
