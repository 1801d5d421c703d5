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


# --- section 2: decoupling -------------------------------------------------------------------

WIRINGS = ("direct", "queued")


def outage(run: dict) -> tuple[float, float]:
    """When the fault's target was killed and when it answered again (epoch seconds)."""
    fault = run["notes"]["faults"][0]
    return fault["killed_at"], fault["ready_at"] or fault["restarted_at"]


def per_second(rows: list[dict], t0: float) -> tuple[list[int], list[float], list[float]]:
    """Raw requests binned by the second they started (since ``t0``): the seconds, the fraction
    that succeeded, and the median latency (ms) of those that did (nan when none did)."""
    bins: dict[int, list[dict]] = {}
    for row in rows:
        bins.setdefault(int(row["start_time"] - t0), []).append(row)
    seconds = sorted(bins)
    ok = [[row["response_time_ms"] for row in bins[s] if row["ok"]] for s in seconds]
    return (seconds, [len(times) / len(bins[s]) for s, times in zip(seconds, ok)],
            [results.percentile(times, 0.5) if times else math.nan for times in ok])


def success_between(rows: list[dict], start: float, end: float) -> float:
    """The fraction of the requests started in [start, end) that succeeded (nan when none)."""
    inside = [row["ok"] for row in rows if start <= row["start_time"] < end]
    return sum(inside) / len(inside) if inside else math.nan


def decoupling_measure(run: dict) -> dict:
    raw = results.read_raw(Path(run["dir"]) / "raw")
    killed, back = outage(run)
    audit = results.read_json(Path(run["dir"]) / "audit.json")
    queued, inventory = audit["queued"]["orders"], audit["inventory"]
    backlog = results.read_samples(run, "backlog")
    measured = {"confirmed": sum(queued.values()), "deducted": queued.get("deducted", 0),
                "cancelled": queued.get("cancelled", 0), "undecided": queued.get("confirmed", 0),
                "inventory_deducted": inventory["queued_outcomes"].get("deducted", 0),
                "inventory_cancelled": inventory["queued_outcomes"].get("cancelled", 0),
                "lowest_stock": min(inventory["stock"].values()), "redelivered": inventory["redelivered"],
                "peak_backlog": max((sample["orders"].get("confirmed", 0) for sample in backlog), default=0),
                "drain_s": run["notes"].get("drain_s", math.nan), "down_s": back - killed}
    for wiring in WIRINGS:
        rows = [row for row in raw if row["name"] == f"/orders {wiring}"]
        measured[f"{wiring}_during"] = 100 * success_between(rows, killed, back)
        measured[f"{wiring}_overall"] = 100 * success_between(rows, 0, math.inf)
    return measured


def decoupling_rows(runs: list[dict]) -> list[dict]:
    """The decoupling scenario, one row: per wiring the success (%) while inventory was down and
    over the run; the queued wiring's audit (confirmed, deducted, cancelled, undecided), the
    lowest stock left, its backlog's peak and how long it took to drain after the load."""
    return results.per_repetition(runs, ("rate",), decoupling_measure)


def adds_up_each(row: dict) -> list[int]:
    """Per repetition, 1 when every confirmed order was deducted or cancelled as inventory counted
    them too, and none left undecided; else 0."""
    return [int(c == d + x and d == i_d and x == i_x and u == 0) for c, d, x, u, i_d, i_x in zip(
        row["confirmed"], row["deducted"], row["cancelled"], row["undecided"],
        row["inventory_deducted"], row["inventory_cancelled"])]


def adds_up(row: dict) -> bool:
    """Every confirmed order deducted or cancelled, as inventory counted them, in every repetition."""
    return all(adds_up_each(row))


def claim_decoupling(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 4.5: orders taken while inventory was down, per wiring, and the queued audit."""
    for row in rows:
        where = _where(row)
        for wiring in WIRINGS:
            claims.add(f"{wiring} wiring: orders taken while inventory was down", row[f"{wiring}_during"], id="4.5",
                       unit="%", digits=0, **where)
        claims.add("queued wiring: confirmed orders deducted or cancelled, none left over (1 = adds up)",
                   adds_up_each(row), id="4.5", unit="", digits=0, match="exact", **where)
        claims.add("queued wiring: backlog drained after the load", row["drain_s"], id="4.5", unit="s", **where)
        claims.add("queued wiring: confirmed orders", row["confirmed"], unit="orders", digits=0, **where)
        claims.add("queued wiring: cancelled (out of stock)", row["cancelled"], unit="orders", digits=0, **where)
        claims.add("lowest stock left", row["lowest_stock"], unit="units", digits=0, **where)
        claims.add("queued wiring: undecided orders at the peak", row["peak_backlog"], unit="orders", digits=0,
                   **where)


# --- section 3: peak shaving -----------------------------------------------------------------

def read_sale_orders(run: dict) -> list[dict]:
    return [{key: float(value) for key, value in row.items()}
            for row in results.read_csv(Path(run["dir"]) / "orders.csv")]


def rate_series(times: list[float], t0: float) -> tuple[list[int], list[int]]:
    """Events per whole second since ``t0``, every second from the first to the last included."""
    counts: dict[int, int] = {}
    for t in times:
        counts[int(t - t0)] = counts.get(int(t - t0), 0) + 1
    if not counts:
        return [], []
    seconds = list(range(min(counts), max(counts) + 1))
    return seconds, [counts.get(s, 0) for s in seconds]


def flatness(written_at: list[float], rate: float) -> float:
    """The largest deviation (%) of writes a second from ``rate`` over the whole seconds between the
    first and the last write (the partial first and last seconds left out); nan when too short."""
    if len(written_at) < 2:
        return math.nan
    seconds, counts = rate_series(written_at, min(written_at))
    inner = counts[:-1]   # the last second is partial; the first starts at the first write
    return max(abs(count - rate) / rate * 100 for count in inner) if inner else math.nan


def shaving_measure(run: dict) -> dict:
    raw = results.read_raw(Path(run["dir"]) / "raw")
    orders = read_sale_orders(run)
    rate = run["params"]["write_rate"]
    audit = results.read_json(Path(run["dir"]) / "audit.json")
    completion = [1000 * (row["written_at"] - row["accepted_at"]) for row in orders]
    rejected = [row["response_time_ms"] for row in raw if row["ok"] and row["name"] == "/buy rejected"]
    answered = [row["response_time_ms"] for row in raw if row["ok"]]
    seconds = max(row["start_time"] for row in raw) - min(row["start_time"] for row in raw) if raw else math.nan
    return {"requests": len(raw), "failed_pct": 100 * sum(not row["ok"] for row in raw) / max(1, len(raw)),
            "arrivals_per_s": len(raw) / seconds if seconds else math.nan,
            "written": audit["written"], "accepted": audit.get("accepted", audit["written"]),
            "lost": run["notes"].get("lost", 0),
            "writes_deviation_pct": flatness([row["written_at"] for row in orders], rate),
            "rejection_p99_ms": results.percentile(rejected, 0.99) if rejected else math.nan,
            "answered_p99_ms": results.percentile(answered, 0.99) if answered else math.nan,
            "completion_median_ms": results.percentile(completion, 0.5) if completion else math.nan,
            "completion_max_ms": max(completion, default=math.nan)}


def shaving_rows(runs: list[dict]) -> dict[str, dict]:
    """The peak-shaving scenario by run name (direct, shaved, shaved-kill where run)."""
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        by_name.setdefault(run["run"], []).append(run)
    return {name: results.per_repetition(group, ("mode",), shaving_measure)[0] for name, group in by_name.items()}


def claim_shaving(claims: results.Claims, rows: dict[str, dict]) -> None:
    """Ledger 4.6: the direct version's failures, the shaved one's fast rejection, flat writes, and
    what a killed consumer cost on the broker the run used."""
    if "direct" in rows:
        row = rows["direct"]
        claims.add("direct: purchases failed (timeout or 503) in a burst of 10x the writer's rate", row["failed_pct"],
                   id="4.6", unit="%", digits=0, **_where(row))
        claims.add("direct: p99 of the purchases answered", row["answered_p99_ms"], unit="ms", digits=0, **_where(row))
    if "shaved" in rows:
        row = rows["shaved"]
        claims.add("shaved: rejection (429) p99", row["rejection_p99_ms"], id="4.6", article="< 20", unit="ms",
                   **_where(row))
        claims.add("shaved: writes a second, largest deviation from the set rate", row["writes_deviation_pct"],
                   id="4.6", article="< 10", unit="%", digits=0, **_where(row))
        claims.add("shaved: accepted orders lost", row["lost"], id="4.6", unit="orders", digits=0, match="exact",
                   **_where(row))
        claims.add("shaved: accepted to written, median", row["completion_median_ms"], unit="ms", digits=0,
                   **_where(row))
        claims.add("shaved: accepted orders", row["accepted"], unit="orders", digits=0, **_where(row))
    if "shaved-kill" in rows:
        row = rows["shaved-kill"]
        claims.add("shaved, consumer SIGKILLed mid-burst: accepted orders lost on "
                   f"{row['runs'][0]['notes'].get('broker_url', 'the broker')}", row["lost"], unit="orders",
                   digits=0, **_where(row))


# --- section 4: point-to-point against publish/subscribe --------------------------------------

PUBSUB_WIRINGS = ("competing", "fanout")


def receipts(run: dict) -> list[dict]:
    """Every message a consumer recorded: n, consumer, received_at."""
    return [{"n": int(row["n"]), "consumer": row["consumer"], "received_at": float(row["received_at"])}
            for row in results.read_csv(Path(run["dir"]) / "received.csv")]


def handled_per_s(rows: list[dict]) -> float:
    """Messages handled a second from the first receipt to the last (nan with fewer than two)."""
    if len(rows) < 2:
        return math.nan
    times = [row["received_at"] for row in rows]
    return (len(rows) - 1) / (max(times) - min(times)) if max(times) > min(times) else math.nan


def pubsub_measure(run: dict) -> dict:
    rows = receipts(run)
    published = run["notes"]["published"]
    by_consumer: dict[str, list[dict]] = {}
    for row in rows:
        by_consumer.setdefault(row["consumer"], []).append(row)
    if run["params"]["wiring"] == "competing":   # each message to one consumer, once
        missing = published - len({row["n"] for row in rows})
        repeats = len(rows) - len({row["n"] for row in rows})
    else:                                          # each message to every subscriber, once
        repeats = sum(len(got) - len({row["n"] for row in got}) for got in by_consumer.values())
        missing = sum(published - len({row["n"] for row in got}) for got in by_consumer.values()) + \
            published * (run["params"]["consumers"] - len(by_consumer))
    return {"published": published, "per_s": handled_per_s(rows),   # every consumer's, together
            "per_consumer_per_s": [handled_per_s(got) for got in by_consumer.values()],
            "deliveries_per_message": len(rows) / published if published else math.nan,
            "repeats": repeats, "missing": missing}


def pubsub_rows(runs: list[dict]) -> list[dict]:
    """The pubsub scenario, one row per (wiring, consumers): messages handled a second by all the
    consumers together, deliveries per message published, repeats and messages missing."""
    rows = results.per_repetition(runs, ("wiring", "consumers"), pubsub_measure)
    return sorted(rows, key=lambda row: (PUBSUB_WIRINGS.index(row["wiring"]), row["consumers"]))


def claim_pubsub(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 4.7: competing consumers share the work (throughput with consumers, each message once);
    a fanout hands every message to every subscriber."""
    for row in rows:
        where, n = _where(row), row["consumers"]
        if row["wiring"] == "competing":
            claims.add(f"competing consumers, {n}: messages handled a second", row["per_s"], id="4.7", unit="/s",
                       digits=0, **where)
        else:
            claims.add(f"fanout, {n} subscribers: deliveries per message published", row["deliveries_per_message"],
                       id="4.7", article=str(n), unit="x", digits=2, **where)
        claims.add(f"{row['wiring']}, {n} consumers: messages missing or repeated",
                   [m + r for m, r in zip(row["missing"], row["repeats"])], id="4.7", unit="messages", digits=0,
                   match="exact", **where)


# --- section 5: a log pipeline -----------------------------------------------------------------

def log_measure(run: dict) -> dict:
    times = results.response_times_ms(run, "/page")
    samples = results.read_samples(run, "queue")
    audit = results.read_json(Path(run["dir"]) / "audit.json")
    return {"median_ms": results.percentile(times, 0.5), "p99_ms": results.percentile(times, 0.99),
            "peak_queue": max((sample["queue_length"] for sample in samples), default=0),
            "shipped": audit["app"]["shipped"], "dropped": audit["app"]["dropped"],
            "lost": run["notes"].get("lost", 0), "drain_s": run["notes"].get("drain_s", math.nan)}


def log_rows(runs: list[dict]) -> dict[str, dict]:
    """The log-pipeline scenario by run name (no-aggregator, slow-aggregator): the application's
    median and p99 (ms), the queue's peak, lines shipped, dropped and lost, the drain (s)."""
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        by_name.setdefault(run["run"], []).append(run)
    return {name: results.per_repetition(group, ("aggregator",), log_measure)[0] for name, group in by_name.items()}


def claim_logs(claims: results.Claims, rows: dict[str, dict]) -> None:
    """Ledger 4.8: a slow aggregator does not slow the application; how far the backlog grew; what a
    SIGKILLed aggregator lost on the run's broker."""
    slow, alone = rows["slow-aggregator"], rows["no-aggregator"]
    where = _where(slow)
    claims.add("application p99, slow aggregator / no aggregator", results.paired_ratios(slow, alone, "p99_ms"),
               id="4.8", article="1x", unit="x", digits=2, **where)
    for name, row in rows.items():
        claims.add(f"application p99, {name}", row["p99_ms"], unit="ms", **_where(row))
    claims.add("slow aggregator: lines waiting in the queue at the peak", slow["peak_queue"], id="4.8", unit="lines",
               digits=0, **where)
    claims.add(f"slow aggregator SIGKILLed: lines lost on {slow['runs'][0]['notes'].get('broker_url', 'the broker')}",
               slow["lost"], id="4.8", unit="lines", digits=0, **where)
    claims.add("slow aggregator: backlog drained after the load", slow["drain_s"], unit="s", **where)
