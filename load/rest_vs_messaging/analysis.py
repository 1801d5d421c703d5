"""Chapter 5's analysis: plain functions from runs (load.results.load_runs) to numbers.

Every function takes a run dict (meta.json plus "dir") or rows made by hand in the unit tests.
"""
import csv
import json
import math
from pathlib import Path

from load.results import Claims, percentile, read_raw

WIRINGS = ("rest", "rest-concurrent", "pipeline", "events")


def count_of(name: str) -> int:
    """Subscribers of a product from its request name: "restock p100" -> 100."""
    return int(name.rsplit("p", 1)[1])


def read_timeline(folder) -> list[dict]:
    path = Path(folder, "timeline.csv")
    if not path.exists():
        return []
    with open(path, newline="") as rows:
        return [{key: (value if key in ("restock", "product") else (float(value) if value else None))
                 for key, value in row.items()} for row in csv.DictReader(rows)]


def read_emails(folder) -> list[tuple[str, bool, float]]:
    path = Path(folder, "emails.csv")
    if not path.exists():
        return []
    with open(path, newline="") as rows:
        return [(row["key"], row["accepted"] == "1", float(row["received_at"])) for row in csv.DictReader(rows)]


def latency_by_count(rows: list[dict]) -> dict[int, float]:
    """Median latency (ms) of successful restocks per subscriber count, from raw request rows."""
    found: dict[int, list] = {}
    for row in rows:
        if row["ok"] and row["name"].startswith("restock p"):
            found.setdefault(count_of(row["name"]), []).append(row["response_time_ms"])
    return {count: percentile(values, 0.5) for count, values in sorted(found.items())}


def last_email_by_count(timeline: list[dict]) -> dict[int, float]:
    """Median time (ms) from a restock's request to its last subscriber's e-mail, per subscriber count."""
    found: dict[int, list] = {}
    for row in timeline:
        if row["last_email_at"] is not None:
            found.setdefault(count_of(row["product"]), []).append(1000 * (row["last_email_at"] - row["requested_at"]))
    return {count: percentile(values, 0.5) for count, values in sorted(found.items())}


def sweep(run: dict) -> dict:
    """One ``subscribers`` run: {"latency_ms": {count: ms}, "last_email_ms": {count: ms}}."""
    return {"latency_ms": latency_by_count(read_raw(Path(run["dir"], "raw"))),
            "last_email_ms": last_email_by_count(read_timeline(run["dir"]))}


def fault_window(run: dict) -> tuple[float, float]:
    """(killed_at, ready_at) of the run's fault, wall-clock seconds."""
    fault = run["notes"]["faults"][0]
    return fault["killed_at"], fault.get("ready_at") or fault.get("restarted_at")


def per_second(rows: list[dict], origin: float, bin_s: float = 1.0) -> list[dict]:
    """Per bin of request start time since ``origin``: requests, success share, median latency (ms)."""
    bins: dict[int, list] = {}
    for row in rows:
        bins.setdefault(math.floor((row["start_time"] - origin) / bin_s), []).append(row)
    series = []
    for index in sorted(bins):
        requests = bins[index]
        ok = [row["response_time_ms"] for row in requests if row["ok"]]
        series.append({"t": index * bin_s, "requests": len(requests), "success": len(ok) / len(requests),
                       "median_ms": percentile(ok, 0.5)})
    return series


def during(rows: list[dict], start: float, end: float) -> dict:
    """Success share and median latency of the requests started within [start, end)."""
    inside = [row for row in rows if start <= row["start_time"] < end]
    ok = [row["response_time_ms"] for row in inside if row["ok"]]
    return {"requests": len(inside), "success": len(ok) / len(inside) if inside else math.nan,
            "median_ms": percentile(ok, 0.5)}


def drain_s(emails: list[tuple[str, bool, float]], ready_at: float) -> float:
    """Seconds from the e-mail service being back to the last accepted e-mail (0 if none after)."""
    last = max((at for _, accepted, at in emails if accepted), default=ready_at)
    return max(0.0, last - ready_at)


def outage(run: dict) -> dict:
    rows = read_raw(Path(run["dir"], "raw"))
    killed, ready = fault_window(run)
    return {"series": per_second(rows, killed), "window": (0.0, ready - killed),
            "during": during(rows, killed, ready), "drain_s": drain_s(read_emails(run["dir"]), ready),
            "books": json.loads(Path(run["dir"], "audit.json").read_text())}


def rate(times: list[float]) -> float:
    """Events per second over the span of ``times`` (n - 1 intervals); 0 for fewer than two."""
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def slow(run: dict) -> dict:
    """Stock updates per second (successful answers over their span) and e-mails per second at the sink."""
    rows = [row for row in read_raw(Path(run["dir"], "raw")) if row["ok"]]
    answered = [row["start_time"] + row["response_time_ms"] / 1000 for row in rows]
    return {"updates_per_s": rate(answered),
            "emails_per_s": rate([at for _, accepted, at in read_emails(run["dir"]) if accepted]),
            "median_ms": percentile([row["response_time_ms"] for row in rows], 0.5)}


def new_consumer(run: dict) -> dict:
    return json.loads(Path(run["dir"], "analytics.json").read_text())


def read_outbox(folder) -> list[tuple[float, float | None]]:
    """(created_at, published_at or None) of every outbox row a ``brokers`` run saved."""
    path = Path(folder, "outbox.csv")
    if not path.exists():
        return []
    with open(path, newline="") as rows:
        return [(float(row["created_at"]), float(row["published_at"]) if row["published_at"] else None)
                for row in csv.DictReader(rows)]


def outbox_backlog(rows: list[tuple[float, float | None]], origin: float, step_s: float = 0.25) -> list[dict]:
    """Events written and not yet published, every ``step_s`` since ``origin``: what the outbox held."""
    if not rows:
        return []
    end = max(published or created for created, published in rows)
    series, t = [], min(created for created, _ in rows)
    while t <= end + step_s:
        held = sum(created <= t and (published is None or published > t) for created, published in rows)
        series.append({"t": t - origin, "held": held})
        t += step_s
    return series


def backlog_drain_s(timeline: list[dict], killed_at: float, ready_at: float) -> float:
    """Seconds from the broker being back until the last e-mail of the restocks made while it was
    away (their events waited in the outbox); 0 if there were none or all were out before."""
    lasts = [row["last_email_at"] for row in timeline if killed_at <= row["created_at"] < ready_at]
    return max(0.0, max(lasts, default=ready_at) - ready_at) if None not in lasts else math.inf


def brokers(run: dict) -> dict:
    """One ``brokers`` run: ``outage``'s series, window, drain and books, the outbox's backlog over
    time and its longest wait, and the stock view's ordering counts."""
    found = outage(run)
    rows = read_outbox(run["dir"])
    killed, _ = fault_window(run)
    found["backlog"] = outbox_backlog(rows, killed)
    killed, ready = fault_window(run)
    found["drain_s"] = backlog_drain_s(read_timeline(run["dir"]), killed, ready)
    found["longest_wait_s"] = max((published - created for created, published in rows if published), default=0.0)
    found["ordering"] = json.loads(Path(run["dir"], "ordering.json").read_text())
    found["broker"], found["faults"] = run["params"]["broker"], [what for what, _, _ in run["params"]["faults"]]
    found["later_kills"] = [fault["killed_at"] - killed for fault in run["notes"]["faults"][1:] if fault["killed_at"]]
    return found


def by_run(runs: list[dict], measure) -> dict:
    """``{run name: [measure(run) per repetition]}``, in the order of the names."""
    found: dict = {}
    for run in sorted(runs, key=lambda run: (run["run"], run.get("repetition", 1))):
        found.setdefault(run["run"], []).append(measure(run))
    return found


def email_outages(runs: list[dict]) -> list[dict]:
    """The ``outage`` runs that killed the e-mail service (workshop size also kills the notifier)."""
    return [run for run in runs if run["params"].get("target", "email") == "email"]


def by_wiring(runs: list[dict], measure) -> dict:
    """``{wiring: [measure(run) per repetition]}`` in the chapter's wiring order."""
    found: dict = {}
    for run in sorted(runs, key=lambda run: run.get("repetition", 1)):
        found.setdefault(run["params"]["wiring"], []).append(measure(run))
    return {wiring: found[wiring] for wiring in WIRINGS if wiring in found}


def add_sweep_claims(claims: Claims, sweeps: dict, size: str) -> None:
    for wiring, reps in sweeps.items():
        top = max(reps[0]["latency_ms"])
        claims.add(f"stock-update median latency, {top} subscribers, {wiring}",
                   [r["latency_ms"].get(top, math.nan) for r in reps],
                   id="5.1", scenario="subscribers", size=size, unit="ms", digits=0)
        if wiring == "events":
            claims.add(f"time until the last of {top} e-mails, events",
                       [r["last_email_ms"].get(top, math.nan) for r in reps],
                       id="5.4", scenario="subscribers", size=size, unit="ms", digits=0,
                       note="visibility: the answer comes long before the work is done")


EXACT_ZERO = dict(article=0, match="exact")
# kombu's Redis transport pops a message before it records it as unacked: a broker SIGKILL between
# the two loses what a consumer had in flight, so on Redis the losses are counted, not asserted
HONEST = {"rabbitmq": EXACT_ZERO,
          "redis": dict(note="counted, not asserted: kombu's Redis transport can lose a message in flight to a broker kill")}


def add_broker_claims(claims: Claims, runs: dict, size: str) -> None:
    """Rows 5.5 (the broker SIGKILLed) and 5.4 (ordering) from ``{run name: [brokers() per repetition]}``."""
    for name, reps in runs.items():
        broker, faults = reps[0]["broker"], reps[0]["faults"]
        if faults[0] == "broker":
            claims.add(f"stock updates answered 2xx while the broker was down, {broker}",
                       [100 * r["during"]["success"] for r in reps], id="5.5", scenario="brokers", size=size, unit="%",
                       digits=0, note="the outbox holds the events")
            claims.add(f"owed e-mails missing after the broker SIGKILL, {broker}", [r["books"]["missing"] for r in reps],
                       id="5.5", scenario="brokers", size=size, digits=0, unit="e-mails", **HONEST[broker])
            claims.add(f"events the stock view never got after the broker SIGKILL, {broker}",
                       [r["ordering"]["missed"] for r in reps], id="5.5", scenario="brokers", size=size, digits=0,
                       unit="events", **HONEST[broker])
            claims.add(f"e-mails accepted twice by the provider after the broker SIGKILL, {broker}",
                       [r["books"]["repeats"] for r in reps], id="5.5", scenario="brokers", size=size, unit="e-mails",
                       digits=0, note="raw attempts minus effective e-mails")
            claims.add(f"longest an event waited in the outbox, {broker} down", [r["longest_wait_s"] for r in reps],
                       id="5.5", scenario="brokers", size=size, unit="s", digits=1)
            claims.add(f"last e-mail of the restocks made while the broker was down, after it was back, {broker}",
                       [r["drain_s"] for r in reps],
                       id="5.5", scenario="brokers", size=size, unit="s", digits=1)
        what = " then ".join("the broker" if f == "broker" else "a stock-view consumer" for f in faults)
        claims.add(f"stock-view deliveries out of publish order, {broker}, {what} SIGKILLed",
                   [r["ordering"]["out_of_order"] for r in reps], id="5.4", scenario="brokers", size=size,
                   unit="events", digits=0, note="3 consumers on one queue; each skipped by the version check")
        # a run whose consumer kill was not recorded (its fault came too late in a short run) has no split
        after_kill = [r["ordering"]["after_consumer_kill"]["out_of_order"] for r in reps
                      if "after_consumer_kill" in r["ordering"]]
        if "consumer" in faults and faults[0] != "consumer" and after_kill:
            claims.add(f"of them after the stock-view consumer's SIGKILL, {broker}", after_kill, id="5.4",
                       scenario="brokers", size=size, unit="events", digits=0, note="redelivered after newer ones")
        claims.add(f"products the stock view got wrong at the end, {broker}, {what} SIGKILLed",
                   [r["ordering"]["view_wrong"] for r in reps], id="5.4", scenario="brokers", size=size,
                   unit="products", digits=0, **(HONEST[broker] if faults[0] == "broker" else EXACT_ZERO))


def add_claims(claims: Claims, sweeps: dict, outages: dict, slows: dict, joins: list, size: str,
               brokers_runs: dict | None = None, workshop_sweeps: dict | None = None) -> Claims:
    """The ledger's rows 5.1-5.5 from the measured dicts (each ``{wiring or run: [per repetition]}``)."""
    add_sweep_claims(claims, sweeps, size)
    if workshop_sweeps:
        add_sweep_claims(claims, workshop_sweeps, "workshop")
    for wiring, reps in outages.items():
        claims.add(f"stock updates answered 2xx while the e-mail service was down, {wiring}",
                   [100 * r["during"]["success"] for r in reps], id="5.2", scenario="outage", size=size, unit="%",
                   digits=0)
        claims.add(f"owed e-mails missing after the outage, {wiring}", [r["books"]["missing"] for r in reps],
                   id="5.2", scenario="outage", size=size, article=0, unit="e-mails", digits=0, match="exact")
        if wiring == "events":
            claims.add("backlog drained after the e-mail service came back, events", [r["drain_s"] for r in reps],
                       id="5.2", scenario="outage", size=size, unit="s", digits=1)
        else:
            claims.add(f"e-mails sent for restocks refused during the outage, {wiring}",
                       [r["books"]["orphans"] for r in reps], id="5.4", scenario="outage", size=size,
                       unit="e-mails", digits=0, note="the REST chain's partial fan-out")
    for wiring, reps in slows.items():
        claims.add(f"stock updates per second with a 200 ms e-mail provider, {wiring}",
                   [r["updates_per_s"] for r in reps], scenario="slow", size=size, unit="/s", digits=1)
    if joins:
        claims.add("events published after the new consumer was ready that it missed", [j["missed"] for j in joins],
                   id="5.3", scenario="new-consumer", size=size, article=0, unit="events", digits=0, match="exact")
        claims.add("events the new consumer received", [j["received"] for j in joins], id="5.3",
                   scenario="new-consumer", size=size, unit="events", digits=0)
    if brokers_runs:
        add_broker_claims(claims, brokers_runs, size)
    return claims
