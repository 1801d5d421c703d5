"""Chapter 4's numbers from its runs: what notebooks/04-message-queues.ipynb plots and what its
``claims.csv`` quotes, as plain functions of run dicts (``results.load_runs``) and of the
``timeline.csv`` rows the backlog scenario writes.

Every number is measured once per repetition: the ``*_rows`` functions return one row per
setting (variant, threads, arrival rate) whose values are lists, one per repetition, to summarise
with ``results.spread``.
"""
import math
from pathlib import Path

from load import results

VARIANTS = ["serial", "parallel", "queued"]
ARTICLE_MS = {"serial": 150, "parallel": 100, "queued": 50}          # one registration, 50 ms a step
ARTICLE_PER_S = {"serial": 7, "parallel": 10, "queued": 20}          # registrations a second, one worker
ARTICLE_RATIOS = {"serial": 3, "parallel": 2}                        # queued is 3x serial, 2x parallel
JOBS_PER_REGISTRATION = ("email_sent_at", "sms_sent_at")            # what the queue defers


# --- one run --------------------------------------------------------------------------------

def median_latency_ms(run: dict) -> float:
    """The median time to answer a registration (ms), successful requests only."""
    times = results.response_times_ms(run, "/register")
    if not times:
        raise ValueError(f"run {run['dir']} recorded no successful request")
    return results.percentile(times, 0.5)


def throughput_per_s(run: dict) -> float:
    """Registrations completed per second once the load was steady (the harness's summary)."""
    return run["summary"]["throughput_per_s"]


def read_timeline(run: dict) -> list[dict]:
    """Per user: registered_at, email_sent_at, sms_sent_at (epoch seconds; empty when never sent)."""
    rows = results.read_csv(Path(run["dir"]) / "timeline.csv")
    if not rows:
        raise ValueError(f"empty timeline in {run['dir']}")
    return rows


def backlog_series(timeline: list[dict]) -> tuple[list[float], list[int]]:
    """Jobs waiting or in progress over time, as a step series: seconds since the first
    registration, and the count. Each registration publishes its jobs (e-mail, SMS); each job sent
    takes one off."""
    t0 = min(float(row["registered_at"]) for row in timeline)
    events = []   # (seconds, change)
    for row in timeline:
        events.append((float(row["registered_at"]) - t0, len(JOBS_PER_REGISTRATION)))
        events += [(float(row[column]) - t0, -1) for column in JOBS_PER_REGISTRATION if row[column]]
    depth, times, counts = 0, [0.0], [0]
    for seconds, change in sorted(events):
        depth += change
        times.append(seconds)
        counts.append(depth)
    return times, counts


def email_delays_ms(timeline: list[dict]) -> list[float]:
    """From registering to the welcome e-mail really sent (ms), for every e-mail sent."""
    return [1000 * (float(row["email_sent_at"]) - float(row["registered_at"]))
            for row in timeline if row["email_sent_at"]]


def arrivals_per_s(timeline: list[dict]) -> float:
    """The arrival rate the registrations really had (Poisson arrivals wander around the target)."""
    times = sorted(float(row["registered_at"]) for row in timeline)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else math.nan


# --- one row per setting, one value per repetition ------------------------------------------

def latency_rows(runs: list[dict]) -> list[dict]:
    """The latency scenario, one row per variant: the median latency (ms)."""
    return results.per_repetition(runs, ("variant",), lambda run: {"median_ms": median_latency_ms(run)})


def throughput_rows(runs: list[dict]) -> list[dict]:
    """The saturation scenario, one row per (variant, threads): registrations a second."""
    rows = results.per_repetition(runs, ("threads", "variant"), lambda run: {"per_s": throughput_per_s(run)})
    return sorted(rows, key=lambda row: (row["threads"], VARIANTS.index(row["variant"])))


def by_variant(rows: list[dict], what: str, threads: int | None = None) -> dict[str, dict]:
    """The rows of every variant (at ``threads`` when given); ValueError naming a missing one."""
    found = {row["variant"]: row for row in rows if threads is None or row.get("threads") == threads}
    missing = [variant for variant in VARIANTS if variant not in found]
    if missing:
        raise ValueError(f"no {what} run for {', '.join(missing)}")
    return {variant: found[variant] for variant in VARIANTS}


def throughput_ratios(rows: list[dict]) -> dict[str, list[float]]:
    """Queued's one-thread throughput over serial's and over parallel's, per repetition."""
    one = by_variant(rows, "one-thread saturation", threads=1)
    return {other: results.paired_ratios(one["queued"], one[other], "per_s") for other in ARTICLE_RATIOS}


def backlog_rows(runs: list[dict]) -> list[dict]:
    """The backlog scenario, one row per arrival rate: the backlog series and its peak, the
    e-mail delays and their median and p95 (ms), the arrival rate reached, the answer's median
    (ms), and how long the backlog took to drain after the load stopped (s)."""
    def measure(run):
        timeline = read_timeline(run)
        delays = email_delays_ms(timeline)
        times, counts = backlog_series(timeline)
        return {"backlog_s": times, "backlog_jobs": counts, "peak_jobs": max(counts), "email_ms": delays,
                "median_email_ms": results.percentile(delays, 0.5), "p95_email_ms": results.percentile(delays, 0.95),
                "arrivals_per_s": arrivals_per_s(timeline), "answered_ms": median_latency_ms(run),
                "drain_s": run["notes"].get("drain_s", math.nan)}
    return results.per_repetition(runs, ("arrival_rate",), measure)


# --- claims.csv -----------------------------------------------------------------------------

def _where(row: dict) -> dict:
    """The scenario and size a row was measured in, for its claims.csv rows."""
    return {"scenario": row["runs"][0]["scenario"], "size": row["runs"][0]["size"]}


def claim_latency(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 4.1: each variant's latency against the article's 150 / 100 / 50 ms."""
    for variant, row in by_variant(rows, "latency").items():
        claims.add(f"{variant} registration latency, one user", row["median_ms"], id="4.1",
                   article=ARTICLE_MS[variant], unit="ms", **_where(row))


def claim_throughput(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 4.2 (one thread: 7 / 10 / 20 a second), 4.3 (queued 3x serial, 2x parallel), and
    the other thread counts (not in the ledger)."""
    one = by_variant(rows, "one-thread saturation", threads=1)
    for variant in VARIANTS:
        claims.add(f"{variant} registrations per second, one thread", one[variant]["per_s"], id="4.2",
                   article=ARTICLE_PER_S[variant], unit="/s", digits=2, **_where(one[variant]))
    for other, ratios in throughput_ratios(rows).items():
        claims.add(f"queued / {other} registrations per second, one thread", ratios, id="4.3",
                   article=f"{ARTICLE_RATIOS[other]}x", unit="x", digits=2, **_where(one[other]))
    for row in rows:
        if row["threads"] != 1:
            claims.add(f"{row['variant']} registrations per second, {row['threads']} threads", row["per_s"],
                       unit="/s", **_where(row))


def claim_backlog(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 4.4: at each arrival rate, the time to the e-mail, the backlog's peak and how long it
    took to drain; the answer's latency and the e-mail's p95 beside them (not in the ledger)."""
    for row in rows:
        at, where = f"at {row['arrival_rate']} registrations/s", _where(row)
        claims.add(f"arrivals reached, target {row['arrival_rate']}/s", row["arrivals_per_s"], id="4.4",
                   unit="/s", **where)
        claims.add(f"registration to e-mail sent, median, {at}", row["median_email_ms"], id="4.4", unit="ms",
                   digits=0, **where)
        claims.add(f"registration to e-mail sent, p95, {at}", row["p95_email_ms"], unit="ms", digits=0, **where)
        claims.add(f"jobs waiting or in progress at the peak, {at}", row["peak_jobs"], id="4.4", unit="jobs",
                   digits=0, **where)
        if not all(math.isnan(seconds) for seconds in row["drain_s"]):   # older sets did not time it
            claims.add(f"backlog drained after the load stopped, {at}", row["drain_s"], id="4.4", unit="s",
                       **where)
        claims.add(f"queued registration answered, median, {at}", row["answered_ms"], unit="ms", **where)
