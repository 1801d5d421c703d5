"""Chapter 1's numbers from its runs: what notebooks/01-realtime-delivery.ipynb plots and what its
``claims.csv`` quotes, as plain functions of run dicts (``results.load_runs``).

Every number is measured once per repetition: the ``*_rows`` functions return one row per
setting (rate and transport, interval, ...) whose values are lists, one per repetition, to
summarise with ``results.spread``. Costs (server CPU, bytes on the wire) are divided by
deliveries over the steady part of a run only (``notes.steady_window`` in meta.json: from the
run's ``settle_s`` after Locust spawned the last receiver to the moment the load began to stop), using the
server's ``/stats`` and the delay proxy's byte counts sampled once a second (``samples.jsonl``,
``proxy-*.jsonl``).
"""
import statistics

from load import results

TRANSPORTS = ["short-poll", "long-poll", "sse", "websocket"]
LEDGER_LATENCY = ("long-poll", "websocket")        # the medians ledger row 1.2 quotes (SSE: the chapter only)
STREAMS = ("sse", "websocket")                     # no request per message: quoted as 0
CAPACITY_GAUGES = {"websocket": "ws_open", "long-poll": "long_polls_held"}
# Result sets recorded before the runs' params carried these: what drive() and the locustfile
# used then (drive() passes --poll-interval 1 unless told; --message-bytes is never passed).
DEFAULT_POLL_INTERVAL_S = 1.0
DEFAULT_MESSAGE_BYTES = 100
LEDGER_RTT_MS = 50                                 # the round trip the claim ledger quotes (1.2)


# --- one run --------------------------------------------------------------------------------

def transport(run: dict) -> str:
    return run["params"]["transport"]


def in_transport_order(rows):
    """Rows by transport, in the order the chapter tells them."""
    return sorted(rows, key=lambda row: TRANSPORTS.index(row["transport"]))


def poll_interval_s(run: dict) -> float:
    """The short-polling interval (s) the run used."""
    return float(run["params"].get("interval", DEFAULT_POLL_INTERVAL_S))


def message_bytes(run: dict) -> int:
    """The body size of each message the run published."""
    return int(run["params"].get("message_bytes", DEFAULT_MESSAGE_BYTES))


def deliveries(run: dict) -> list[float]:
    """Latency (ms) of every message pushed or polled after the receivers were all connected."""
    times = results.response_times_ms(run, f"deliver {transport(run)}")
    if not times:
        raise ValueError(f"run {run['dir']} delivered no message")
    return times


def order_failures(run: dict) -> int:
    """Messages a receiver found lost, repeated or out of order (the locustfile's ``order`` checks)."""
    return sum(s["failures"] for name, s in run["summary"]["by_name"].items() if name.startswith("order"))


def requests_per_delivery(run: dict) -> float:
    """Poll requests per delivered message (streams make none per message)."""
    by_name = run["summary"]["by_name"]
    polls = sum(s["requests"] for name, s in by_name.items() if name.startswith("poll"))
    delivered = sum(s["requests"] for name, s in by_name.items()
                    if name.split()[0] in ("deliver", "ramp", "replay"))
    return polls / delivered if delivered else float("nan")


def steady_samples(run: dict, name: str = "samples") -> tuple[dict, dict]:
    """The first and last sample of ``name`` inside the run's steady window."""
    start, end = run["notes"]["steady_window"]
    rows = [row for row in results.read_samples(run, name) if start <= row["t"] <= end]
    if len(rows) < 2:
        raise ValueError(f"run {run['dir']}: fewer than 2 '{name}' samples in its steady window")
    return rows[0], rows[-1]


def per_second(run: dict, name: str, keys: list[str]) -> list[float]:
    """Over the steady window: how fast each of ``keys`` grew in the ``name`` samples (per second)."""
    first, last = steady_samples(run, name)
    seconds = last["t"] - first["t"]
    return [(last.get(key, 0) - first.get(key, 0)) / seconds for key in keys]


def delivery_rate(run: dict) -> tuple[float, float]:
    """Deliveries per second the server made, and its CPU seconds per second, in the steady part."""
    delivered, cpu = per_second(run, "samples", ["deliveries." + transport(run).replace("-", "_"),
                                                 "process.cpu_s"])
    return delivered, cpu


def server_cpu_per_s(run: dict) -> float:
    """The server's CPU seconds per second in the steady part (for a publisher-only run: the cost
    of taking the messages in, and idling, that every transport pays alike)."""
    return per_second(run, "samples", ["process.cpu_s"])[0]


def cpu_us_per_delivery(run: dict, baseline_cpu_per_s: float = 0.0) -> float:
    """Server CPU per delivered message (µs): the whole process, or beyond ``baseline_cpu_per_s``
    (the publisher alone at the same rate) for what delivering alone costs."""
    delivered, cpu = delivery_rate(run)
    return 1e6 * (cpu - baseline_cpu_per_s) / delivered if delivered else float("nan")


def wire_bytes_per_delivery(run: dict) -> float:
    """TCP payload both ways through the delay proxies, per delivered message (steady part; rates,
    because the proxies and the server are sampled at slightly different moments)."""
    delivered, _ = delivery_rate(run)
    wire = sum(sum(per_second(run, proxy, ["bytes_up", "bytes_down"])) for proxy in ("proxy-http", "proxy-ws"))
    return wire / delivered if delivered else float("nan")


def memory_per_client(run: dict) -> dict:
    """Clients held at the peak, resident memory per client there beyond the idle server (KB),
    and the ramp up to the peak (clients held, MiB) to plot."""
    samples = results.read_samples(run)
    if not samples:
        raise ValueError(f"run {run['dir']} has no samples")
    gauge = CAPACITY_GAUGES[transport(run)]
    held = [row.get(gauge, 0) for row in samples]
    peak = max(range(len(samples)), key=lambda i: (held[i], -i))    # the first sample at the most
    idle = samples[0]["process.rss_bytes"]
    grown = samples[peak]["process.rss_bytes"] - idle
    return {"held": held[peak], "kb_per_client": grown / held[peak] / 1024 if held[peak] else float("nan"),
            "idle_mib": idle / 2**20, "ramp_clients": held[:peak + 1],
            "ramp_mib": [row["process.rss_bytes"] / 2**20 for row in samples[:peak + 1]]}


# --- one row per setting, one value per repetition ------------------------------------------

def _baseline(baselines: dict, run: dict) -> float:
    """The publisher-only CPU (s/s) at the run's rate: its own repetition's, else the median of
    that rate's repetitions, else none (0)."""
    rate = run["params"]["rate"]
    if (rate, run.get("repetition", 1)) in baselines:
        return baselines[(rate, run.get("repetition", 1))]
    same_rate = [cpu for (other, _), cpu in baselines.items() if other == rate]
    return statistics.median(same_rate) if same_rate else 0.0


def latency_rows(runs: list[dict]) -> list[dict]:
    """The latency scenario, one row per (rate, transport): delivery times and their median and
    p99 (ms), deliveries, requests and server CPU (µs, whole and delivering only) per delivery,
    order failures, the short-polling interval."""
    baselines = {(run["params"]["rate"], run.get("repetition", 1)): server_cpu_per_s(run)
                 for run in runs if transport(run) == "none"}

    def measure(run):
        times = deliveries(run)
        return {"times": times, "deliveries": len(times), "median_ms": results.percentile(times, 0.5),
                "p99_ms": results.percentile(times, 0.99), "requests_per_delivery": requests_per_delivery(run),
                "cpu_us_per_delivery": cpu_us_per_delivery(run),
                "delivering_cpu_us_per_delivery": cpu_us_per_delivery(run, _baseline(baselines, run)),
                "order_failures": order_failures(run), "interval_s": poll_interval_s(run)}
    rows = results.per_repetition([run for run in runs if transport(run) in TRANSPORTS], ("rate", "transport"), measure)
    return sorted(in_transport_order(rows), key=lambda row: row["rate"])


def cpu_ratios(rows: list[dict], rate) -> dict | None:
    """Server CPU per delivery, long polling / WebSocket at ``rate``, per repetition: ``whole``
    process and ``delivering`` only; None without both transports at that rate."""
    at_rate = {row["transport"]: row for row in rows if row["rate"] == rate}
    if "long-poll" not in at_rate or "websocket" not in at_rate:
        return None
    long_poll, websocket = at_rate["long-poll"], at_rate["websocket"]
    return {"whole": results.paired_ratios(long_poll, websocket, "cpu_us_per_delivery"),
            "delivering": results.paired_ratios(long_poll, websocket, "delivering_cpu_us_per_delivery")}


def interval_rows(runs: list[dict]) -> list[dict]:
    """The interval scenario, one row per interval (s): mean and worst delivery latency (ms)."""
    def measure(run):
        times = deliveries(run)
        return {"mean_ms": statistics.mean(times), "worst_ms": max(times)}
    return results.per_repetition(runs, ("interval",), measure)


def wan_rows(runs: list[dict]) -> list[dict]:
    """The wan scenario, one row per (RTT, rate, transport): delivery times, median and p99 (ms),
    bytes on the wire per delivery, order failures, the message body's size."""
    def measure(run):
        times = deliveries(run)
        return {"times": times, "median_ms": results.percentile(times, 0.5),
                "p99_ms": results.percentile(times, 0.99), "wire_bytes": wire_bytes_per_delivery(run),
                "order_failures": order_failures(run), "message_bytes": message_bytes(run)}
    rows = results.per_repetition(runs, ("rtt_ms", "rate", "transport"), measure)
    return sorted(in_transport_order(rows), key=lambda row: (row["rtt_ms"], row["rate"]))


def capacity_rows(runs: list[dict]) -> list[dict]:
    """The capacity scenario, one row per transport: clients held, memory per client (KB), the
    ramp, order failures."""
    def measure(run):
        return {**memory_per_client(run), "order_failures": order_failures(run)}
    return in_transport_order(results.per_repetition(runs, ("transport",), measure))


# --- claims.csv -----------------------------------------------------------------------------

def _where(row: dict) -> dict:
    """The scenario and size a row was measured in, for its claims.csv rows."""
    return {"scenario": row["runs"][0]["scenario"], "size": row["runs"][0]["size"]}


def claim_latency(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 1.2 (medians), 1.3 (order), 1.4 (requests per delivery), 1.5 (CPU ratio)."""
    for row in rows:
        t, rate, where = row["transport"], row["rate"], _where(row)
        if t == "short-poll":
            interval = statistics.median(row["interval_s"])
            claims.add(f"short-poll median latency at {rate} messages/s, {interval:g} s interval", row["median_ms"],
                       article=f"{500 * interval:g} on average (interval / 2)", unit="ms", **where)
        else:
            claims.add(f"{t} median latency at {rate} messages/s", row["median_ms"], id="1.2" if t in LEDGER_LATENCY else "",
                       article="ms" if t == "long-poll" else "", unit="ms", **where)
        claims.add(f"{t} messages lost, repeated or reordered at {rate} messages/s", row["order_failures"],
                   id="1.3", article=0, digits=0, match="exact", **where)
        claims.add(f"{t} HTTP requests per delivered message at {rate} messages/s", row["requests_per_delivery"],
                   id="1.4", digits=0 if t in STREAMS else 2, **where)
        claims.add(f"{t} server CPU per delivery at {rate} messages/s, whole process", row["cpu_us_per_delivery"],
                   unit="µs", digits=0, **where)
        claims.add(f"{t} server CPU per delivery at {rate} messages/s, delivering only",
                   row["delivering_cpu_us_per_delivery"], unit="µs", digits=0, **where)
    if rows:
        checked = {}
        for row in rows:
            for run, count in zip(row["runs"], row["deliveries"]):
                checked[run.get("repetition", 1)] = checked.get(run.get("repetition", 1), 0) + count
        claims.add("deliveries checked for loss, repeats and order (latency scenario)", list(checked.values()),
                   digits=0, **_where(rows[0]))
    for rate in sorted({row["rate"] for row in rows}):
        ratios = cpu_ratios(rows, rate)
        if ratios is None or not ratios["whole"]:    # no repetition has both transports
            continue
        where = _where(next(row for row in rows if row["rate"] == rate))
        for part, label, digits in (("whole", "whole process", 1), ("delivering", "delivering only", 0)):
            claims.add(f"server CPU per delivery, long polling / WebSocket, {label}, at {rate} messages/s",
                       ratios[part], id="1.5", article="5x (issue)", unit="x", digits=digits,
                       note=results.noisy_note(results.spread(ratios[part]), digits, "x"), **where)


def claim_interval(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 1.1: short polling's mean latency against half its interval (and its worst case)."""
    for row in rows:
        ms, where = 1000 * row["interval"], _where(row)
        claims.add(f"short polling mean latency at {ms:g} ms interval", row["mean_ms"], id="1.1",
                   article=f"{ms / 2:g}", unit="ms", **where)
        claims.add(f"short polling worst latency at {ms:g} ms interval", row["worst_ms"],
                   article=f"{ms:g}", unit="ms", **where)


def claim_wan(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 1.2 (medians at 50 ms RTT and the lowest rate), 1.3 (order), 1.4 (bytes on the wire
    per delivery)."""
    lowest_rate = min((row["rate"] for row in rows), default=None)
    for row in rows:
        t, rtt, rate, where = row["transport"], row["rtt_ms"], row["rate"], _where(row)
        at = f"at {rtt} ms RTT and {rate} messages/s"
        claims.add(f"{t} median latency {at}", row["median_ms"], article=f">= {rtt / 2:g} (one way)", unit="ms",
                   id="1.2" if t in LEDGER_LATENCY and (rtt, rate) == (LEDGER_RTT_MS, lowest_rate) else "", **where)
        claims.add(f"{t} messages lost, repeated or reordered {at}", row["order_failures"], id="1.3",
                   article=0, digits=0, match="exact", **where)
        claims.add(f"{t} bytes on the wire per delivered message {at}", row["wire_bytes"], id="1.4",
                   unit="bytes", digits=0, **where)


def claim_capacity(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 1.6 (clients held, memory per client) and 1.3 (order while holding them)."""
    targets = {"websocket": ("10000 (issue)", "< 20 (issue)"), "long-poll": ("5000 (issue)", "")}
    for row in rows:
        t, where = row["transport"], _where(row)
        held, under = targets.get(t, ("", ""))
        claims.add(f"{t} clients held by one server process", row["held"], id="1.6", article=held,
                   digits=0, **where)
        claims.add(f"{t} server memory per client", row["kb_per_client"], id="1.6", article=under, unit="KB",
                   **where)
        claims.add(f"{t} messages lost, repeated or reordered while holding the clients", row["order_failures"],
                   id="1.3", article=0, digits=0, match="exact", **where)
