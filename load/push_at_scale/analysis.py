"""Chapter 2's numbers from its runs: what notebooks/02-push-at-scale.ipynb plots and what its
``claims.csv`` quotes, as plain functions of run dicts (``results.load_runs``): the receivers'
reports (``receiver-<n>.json``), the gateways' sampled ``/stats`` (``samples-<gateway>.jsonl``),
the bare ``broadcast()`` bench (``bench.json``) and the run's params and notes.

Rates and costs are taken over the pushing window only (``notes.pushing_from`` to
``pushing_until``): the devices' connecting and the drain after the pusher stopped are left out.
"""
import json
import math
from pathlib import Path

from load import results

# The talk (Meizu, 2015): about 25 million devices online, up to 6 million pushes a minute across
# the cluster, a target of 4 million connections a machine, heartbeats every 3 to 10 minutes.
ARTICLE_DEVICES = 25_000_000
ARTICLE_PER_MINUTE = 6_000_000
ARTICLE_PER_MACHINE = 4_000_000
ARTICLE_HEARTBEAT_S = (180, 600)
ISSUE_DELIVERIES_PER_S = 25_000   # the issue's target with the whole protocol, p99 at most 50 ms
ISSUE_P99_MS = 50
ISSUE_KB_PER_CONNECTION = 20
HEARTBEAT_FRAME_BYTES = 13 + 6    # '{"type":"hb"}' in a masked client frame: 2 header + 4 mask bytes
TCP_IP_BYTES = 52                 # IPv4 + TCP headers with timestamps, per segment
OPEN_FILES_PER_PROCESS = 20_000   # this machine's hard limit (platform facts)


# --- one run ----------------------------------------------------------------------------------

def reports(run: dict) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(Path(run["dir"]).glob("receiver-*.json"))]


def audit(run: dict) -> dict:
    """Every receiver's counts summed: frames received, duplicates, skipped numbers, gaps, devices live."""
    found = reports(run)
    if not found:
        raise ValueError(f"run {run['dir']} has no receiver report")
    return {key: sum(report[key] for report in found)
            for key in ("received", "duplicates", "skipped", "gaps", "ready", "devices", "live_deliveries")}


def latencies_ms(run: dict) -> list[float]:
    return [value for report in reports(run) for value in report.get("latency_ms", [])]


def latency_ms(run: dict, fraction: float) -> float:
    values = latencies_ms(run)
    if not values:
        raise ValueError(f"run {run['dir']} recorded no live delivery")
    return results.percentile(values, fraction)


def window(run: dict) -> tuple[float, float]:
    notes = run.get("notes", {})
    return notes["pushing_from"], notes["pushing_until"]


def push_seconds(run: dict) -> float:
    """How long the pusher pushed: from Locust's last user spawned to its first stopping (the
    harness's pacing record), else the whole Locust run."""
    pacing = run.get("pacing") or {}
    if pacing.get("spawned_at") and pacing.get("stopping_at") and pacing["stopping_at"] > pacing["spawned_at"]:
        return pacing["stopping_at"] - pacing["spawned_at"]
    start, end = window(run)
    return end - start


def gateway_names(run: dict) -> list[str]:
    return sorted(path.stem[len("samples-"):] for path in Path(run["dir"]).glob("samples-*.jsonl"))


def delta(samples: list[dict], start: float, end: float, keys: tuple) -> dict:
    """The change of each counter ``keys`` (``a+b`` sums two) and of ``t`` from the last sample at or
    before ``start`` to the first at or after ``end``: a gateway too busy to answer a sample in the
    window (it times out after a second) still brackets it."""
    before = [s for s in samples if s["t"] <= start] or samples[:1]
    after = [s for s in samples if s["t"] >= end] or samples[-1:]
    if not before or not after or after[0]["t"] <= before[-1]["t"]:
        raise ValueError(f"no samples around {start}-{end}")
    first, last = before[-1], after[0]
    found = {"t": last["t"] - first["t"]}
    for key in keys:
        found[key] = sum(last.get(k, 0) - first.get(k, 0) for k in key.split("+"))
    return found


DELIVERIES = "deliveries.topic+deliveries.device+deliveries.held+deliveries.pulled"


def gateway_rates(run: dict) -> dict:
    """All gateways together, for the messages pushed in the window: deliveries a second (over the
    window's length), gateway CPU cores busy and µs of gateway CPU per delivery (the drain after the
    pusher stopped included), heartbeats a second."""
    start, end = window(run)
    deliveries = cpu = heartbeats = 0.0
    for name in gateway_names(run):
        change = delta(results.read_samples(run, f"samples-{name}"), start, end, (DELIVERIES, "cpu_s", "heartbeats"))
        deliveries += change[DELIVERIES]
        cpu += change["cpu_s"] / change["t"]
        heartbeats += change["heartbeats"] / change["t"]
    cpu_s = sum(delta(results.read_samples(run, f"samples-{name}"), start, end, ("cpu_s",))["cpu_s"]
                for name in gateway_names(run))
    return {"deliveries_per_s": deliveries / push_seconds(run), "cpu_cores": cpu, "heartbeats_per_s": heartbeats,
            "us_per_delivery": 1e6 * cpu_s / deliveries if deliveries else math.nan}


def bench(run: dict) -> dict:
    """The bare broadcast() ceiling: deliveries per second of gateway CPU, and µs per delivery."""
    data = json.loads((Path(run["dir"]) / "bench.json").read_text())
    deliveries = sum(b["deliveries"] for b in data.values())
    cpu = sum(b["cpu_s"] for b in data.values())
    wall = max(b["wall_s"] for b in data.values())
    return {"per_cpu_s": deliveries / cpu if cpu else math.nan, "us_per_delivery": 1e6 * cpu / deliveries,
            "per_wall_s": deliveries / wall if wall else math.nan}


def receivers_us_per_delivery(run: dict) -> float:
    """The load generator's cost: the receiver processes' CPU during the Locust run over the
    deliveries in it (µs each): what the devices' side of the protocol costs on the same two cores."""
    cpu = sum(v or 0 for name, v in (run.get("services_cpu_s") or {}).items() if name.startswith("receiver-"))
    deliveries = gateway_rates(run)["deliveries_per_s"] * push_seconds(run)
    return 1e6 * cpu / deliveries if cpu and deliveries else math.nan


def batched_fraction(run: dict) -> float:
    """The share of topic messages that went out several in one frame (``--batch``)."""
    data = json.loads((Path(run["dir"]) / "gateways.json").read_text())
    messages = sum(g.get("topic.messages", 0) for g in data.values())
    return sum(g.get("topic.batched", 0) for g in data.values()) / messages if messages else 0.0


# the load generator and gateway options of a fan-out run (absent from the first reference set's runs)
FANOUT_DEFAULTS = dict(client="full", event_loop="asyncio", batch=1, ack_every_s=1.0, gateways=1)
FANOUT_KEYS = ("client", "event_loop", "send_path", "batch", "ack_every_s", "gateways", "devices", "rate")


def with_defaults(run: dict) -> dict:
    return {**run, "params": {**FANOUT_DEFAULTS, **run["params"]}}


def stages_ms(run: dict) -> dict:
    """Where a topic message's time goes, from the gateways' counters after the run: from the API's
    store to the gateway's first write (API, store, bus), and writing its frame to every device
    (wall time), each a mean per message."""
    data = json.loads((Path(run["dir"]) / "gateways.json").read_text())
    messages = sum(g.get("topic.messages", 0) for g in data.values())
    if not messages:
        raise ValueError(f"run {run['dir']}: no topic message")
    return {"store_to_send_ms": sum(g.get("topic.store_to_send_ms", 0) for g in data.values()) / messages,
            "send_ms": sum(g.get("topic.send_ms", 0) for g in data.values()) / messages}


def memory_curve(run: dict) -> tuple[list[int], list[float]]:
    """Connections held and resident memory (MiB), all gateways summed, sample by sample."""
    names = gateway_names(run)
    series = [results.read_samples(run, f"samples-{name}") for name in names]
    count = min(len(s) for s in series)
    return ([sum(s[i]["connections"] for s in series) for i in range(count)],
            [sum(s[i]["rss_bytes"] for s in series) / 2**20 for i in range(count)])


def bytes_per_connection(connections: list[int], rss_mib: list[float]) -> float:
    """The least-squares slope of memory over connections (bytes each), from samples holding some."""
    points = [(c, m * 2**20) for c, m in zip(connections, rss_mib) if c > 0]
    if len(points) < 2 or len({c for c, _ in points}) < 2:
        # one level only: (memory there - memory with none) / connections
        idle = [m * 2**20 for c, m in zip(connections, rss_mib) if c == 0]
        if not points or not idle:
            raise ValueError("need samples at two connection counts (or at zero and one)")
        c, m = max(points)
        return (m - min(idle)) / c
    n = len(points)
    mean_c = sum(c for c, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    return (sum((c - mean_c) * (m - mean_m) for c, m in points) / sum((c - mean_c) ** 2 for c, _ in points))


def heartbeat_cost(run: dict) -> dict:
    """CPU (µs) and wire bytes per heartbeat, and per device a second at the run's interval."""
    rates = gateway_rates(run)
    per_s = rates["heartbeats_per_s"]
    return {"heartbeats_per_s": per_s, "cpu_cores": rates["cpu_cores"],
            "us_per_heartbeat": 1e6 * rates["cpu_cores"] / per_s if per_s else math.nan,
            "bytes_per_s": per_s * (HEARTBEAT_FRAME_BYTES + TCP_IP_BYTES)}


# --- one row per setting, one value per repetition ----------------------------------------------

def fanout_rows(runs: list[dict]) -> list[dict]:
    """One row per setting (FANOUT_KEYS), each with the offered load (``offered``: rate x devices)."""
    def measure(run):
        rates, counts = gateway_rates(run), audit(run)
        bare = bench(run) if (Path(run["dir"]) / "bench.json").exists() else {"per_cpu_s": math.nan,
                                                                            "us_per_delivery": math.nan}
        return {"deliveries_per_s": rates["deliveries_per_s"], "us_per_delivery": rates["us_per_delivery"],
                "p50_ms": latency_ms(run, 0.5), "p99_ms": latency_ms(run, 0.99),
                "bare_per_cpu_s": bare["per_cpu_s"], "bare_us": bare["us_per_delivery"],
                "protocol_per_cpu_s": 1e6 / rates["us_per_delivery"], **stages_ms(run),
                "receivers_us": receivers_us_per_delivery(run), "batched": batched_fraction(run),
                "lost_or_repeated": counts["duplicates"] + counts["skipped"]}
    rows = results.per_repetition([with_defaults(run) for run in runs], FANOUT_KEYS, measure)
    for row in rows:
        row["offered"] = row["rate"] * row["devices"]
    return rows


def best_within(rows: list[dict], p99_ms: float = ISSUE_P99_MS) -> dict:
    """Of ``rows``, the one delivering most a second with its median p99 within ``p99_ms`` (None if none)."""
    fit = [row for row in rows if results.spread(row["p99_ms"]).median <= p99_ms]
    return max(fit, key=lambda row: results.spread(row["deliveries_per_s"]).median) if fit else None


def connection_rows(runs: list[dict]) -> list[dict]:
    def measure(run):
        connections, rss = memory_curve(run)
        return {"held": max(connections), "bytes_each": bytes_per_connection(connections, rss),
                "lost_or_repeated": audit(run)["duplicates"] + audit(run)["skipped"]}
    return results.per_repetition(runs, ("devices",), measure)


def unicast_rows(runs: list[dict]) -> list[dict]:
    def measure(run):
        counts = audit(run)
        return {"per_s": counts["live_deliveries"] / push_seconds(run), "p50_ms": latency_ms(run, 0.5),
                "p99_ms": latency_ms(run, 0.99), "lost_or_repeated": counts["duplicates"] + counts["skipped"]}
    return results.per_repetition(runs, ("gateways", "rate"), measure)


def heartbeat_rows(runs: list[dict]) -> list[dict]:
    return results.per_repetition(runs, ("heartbeat_s", "devices"), heartbeat_cost)


# --- the talk's scale, from our costs -----------------------------------------------------------

def extrapolate(bytes_each: float, us_per_delivery: float, us_per_heartbeat: float,
                devices: int = ARTICLE_DEVICES, per_minute: int = ARTICLE_PER_MINUTE,
                heartbeat_s: float = ARTICLE_HEARTBEAT_S[0], cores_per_machine: int = 2,
                memory_gib_per_machine: float = 24) -> list[dict]:
    """Rows of (what, amount, unit): the memory, processes, cores and machines our gateway would need
    for the talk's numbers, from our measured per-connection and per-delivery costs."""
    per_s = per_minute / 60
    memory_gib = devices * bytes_each / 2**30
    delivery_cores = per_s * us_per_delivery / 1e6
    heartbeat_cores = devices / heartbeat_s * us_per_heartbeat / 1e6
    processes = math.ceil(devices / OPEN_FILES_PER_PROCESS)
    machines_memory = math.ceil(memory_gib / memory_gib_per_machine)
    machines_cpu = math.ceil((delivery_cores + heartbeat_cores) / cores_per_machine)
    return [
        {"what": "gateway memory for every connection", "amount": memory_gib, "unit": "GiB"},
        {"what": f"gateway processes at {OPEN_FILES_PER_PROCESS:,} connections each", "amount": processes, "unit": "processes"},
        {"what": f"CPU for {per_s:,.0f} deliveries a second", "amount": delivery_cores, "unit": "cores"},
        {"what": f"CPU for heartbeats every {heartbeat_s:g} s", "amount": heartbeat_cores, "unit": "cores"},
        {"what": f"machines like this one ({cores_per_machine} cores, {memory_gib_per_machine:g} GiB), by memory",
         "amount": machines_memory, "unit": "machines"},
        {"what": "the same, by CPU", "amount": machines_cpu, "unit": "machines"},
        {"what": f"the talk's target: {ARTICLE_PER_MACHINE:,} connections a machine", "amount":
         math.ceil(devices / ARTICLE_PER_MACHINE), "unit": "machines"},
    ]


# --- claims.csv ----------------------------------------------------------------------------------

def size_of(rows: list[dict]) -> str:
    sizes = {run.get("size", "default") for row in rows for run in row["runs"]}
    return sizes.pop() if len(sizes) == 1 else "mixed"


def setting(row: dict) -> str:
    client = "lean devices, uvloop" if row["client"] == "lean" else "DeviceClient, asyncio"
    return (f"{row['devices']:,} devices, {row['rate']:g} pushes/s, {client}, {row['send_path']}"
            + (f", {row['gateways']} gateways" if row["gateways"] > 1 else ""))


def headline_row(rows: list[dict]) -> dict:
    """The fan-out row the ledger quotes: not workshop size, lean devices, one gateway, ``broadcast()``,
    the most offered (the fewest devices of those: the smallest bursts)."""
    default = [row for row in rows if size_of([row]) != "workshop"] or rows
    lean = [row for row in default if row["client"] == "lean" and row["gateways"] == 1] or default
    return max((row for row in lean if row["send_path"] == "broadcast"), key=lambda row: (row["offered"], -row["devices"]))


def claim_fanout(claims, rows: list[dict]) -> None:
    default = [row for row in rows if size_of([row]) != "workshop"] or rows
    top = headline_row(rows)
    size = size_of([top])
    what = setting(top)
    claims.add(f"topic deliveries a second, whole protocol, {what}", top["deliveries_per_s"], id="2.1",
               scenario="fanout", size=size, article=ISSUE_DELIVERIES_PER_S, unit="per s", digits=0,
               note="the issue's 25,000/s; the talk's 6,000,000 a minute is 100,000/s across its cluster")
    claims.add(f"p99 delivery latency, {what}", top["p99_ms"], id="2.1", scenario="fanout", size=size,
               article=ISSUE_P99_MS, unit="ms", digits=1, note="the issue's bound, not the talk's")
    claims.add(f"median delivery latency, {what}", top["p50_ms"], scenario="fanout", size=size, unit="ms", digits=1)
    claims.add("bare broadcast() ceiling, deliveries per gateway CPU second", top["bare_per_cpu_s"], id="2.1",
               scenario="fanout", size=size, unit="per CPU s", digits=0)
    claims.add("whole protocol, deliveries per gateway CPU second", top["protocol_per_cpu_s"], id="2.1",
               scenario="fanout", size=size, unit="per CPU s", digits=0)
    claims.add("the receivers' (load generator's) CPU per delivery, lean devices", top["receivers_us"],
               scenario="fanout", size=size, unit="µs", digits=1)
    claims.add("store to the gateway's first write (API, store, bus), mean a topic message", top["store_to_send_ms"],
               scenario="fanout", size=size, unit="ms", digits=1)
    claims.add(f"writing one topic frame to all {top['devices']:,} devices, mean wall time", top["send_ms"],
               scenario="fanout", size=size, unit="ms", digits=1)
    for row in default:
        if row is top:
            continue
        if row["send_path"] == "transport":
            claims.add(f"frame written straight to each transport: p99 delivery latency, {setting(row)}", row["p99_ms"],
                       id="2.1", scenario="fanout", size=size_of([row]), unit="ms", digits=1)
            claims.add(f"frame written straight to each transport: deliveries a second, {setting(row)}",
                       row["deliveries_per_s"], scenario="fanout", size=size_of([row]), unit="per s", digits=0)
            claims.add("frame written straight to each transport: whole protocol, deliveries per gateway CPU second",
                       row["protocol_per_cpu_s"], scenario="fanout", size=size_of([row]), unit="per CPU s", digits=0)
        elif row["client"] == "full":
            claims.add(f"the first reference set's setup: p99 delivery latency, {setting(row)}", row["p99_ms"],
                       id="2.1", scenario="fanout", size=size_of([row]), unit="ms", digits=1)
            claims.add("the first reference set's setup: the receivers' CPU per delivery (DeviceClient)",
                       row["receivers_us"], scenario="fanout", size=size_of([row]), unit="µs", digits=1)
        else:
            claims.add(f"p99 delivery latency, {setting(row)}", row["p99_ms"], scenario="fanout",
                       size=size_of([row]), unit="ms", digits=1)
    workshop = [row for row in rows if size_of([row]) == "workshop"]
    sweep = [row for row in workshop if row["gateways"] == 1]
    for path in ("broadcast", "transport"):
        mine = [row for row in sweep if row["send_path"] == path]
        if not mine:
            continue
        most = max(mine, key=lambda row: results.spread(row["deliveries_per_s"]).median)
        claims.add(f"sweep, {path}: the most deliveries a second ({setting(most)})", most["deliveries_per_s"],
                   id="2.1", scenario="fanout", size="workshop", article=ARTICLE_PER_MINUTE / 60, unit="per s",
                   digits=0, note="the talk's 100,000/s across its cluster")
        claims.add(f"sweep, {path}: p99 at that rate", most["p99_ms"], scenario="fanout", size="workshop",
                   unit="ms", digits=1)
        best = best_within(mine)
        if best is not None:
            claims.add(f"sweep, {path}: the most deliveries a second at p99 within {ISSUE_P99_MS} ms ({setting(best)})",
                       best["deliveries_per_s"], id="2.1", scenario="fanout", size="workshop", unit="per s", digits=0)
    for row in workshop:
        if row["gateways"] > 1:
            claims.add(f"one topic to {row['devices']:,} devices: deliveries a second ({setting(row)})",
                       row["deliveries_per_s"], id="2.1", scenario="fanout", size="workshop", unit="per s", digits=0)
            claims.add(f"one topic to {row['devices']:,} devices: p99 delivery latency", row["p99_ms"], id="2.1",
                       scenario="fanout", size="workshop", unit="ms", digits=1)
    claims.add("duplicated or skipped deliveries", [sum(row["lost_or_repeated"][i] for row in default) for i in
               range(len(top["lost_or_repeated"]))], scenario="fanout", size=size, article=0, unit="deliveries",
               digits=0, match="exact")


def claim_connections(claims, rows: list[dict]) -> None:
    for row in rows:
        size = size_of([row])
        claims.add("connections held", row["held"], id="2.2", scenario="connections", size=size,
                   article=ARTICLE_PER_MACHINE, unit="connections", digits=0, match="exact")
        claims.add("gateway memory per connection", [v / 1000 for v in row["bytes_each"]], id="2.2",
                   scenario="connections", size=size, article=ISSUE_KB_PER_CONNECTION, unit="KB", digits=1)


def marginal_us_per_heartbeat(rows: list[dict]) -> list[float]:
    """Per repetition, the slope of gateway CPU against heartbeats a second between the slowest and
    the fastest interval: what one more heartbeat costs, the idle crowd's other work (acks, the one
    push a second, the sweep) left out."""
    slow, fast = max(rows, key=lambda r: r["heartbeat_s"]), min(rows, key=lambda r: r["heartbeat_s"])
    return [1e6 * (cf - cs) / (hf - hs) for cf, cs, hf, hs in
            zip(fast["cpu_cores"], slow["cpu_cores"], fast["heartbeats_per_s"], slow["heartbeats_per_s"]) if hf > hs]


def claim_heartbeat(claims, rows: list[dict]) -> None:
    for row in rows:
        claims.add(f"gateway CPU, {row['devices']:,} idle devices heartbeating every {row['heartbeat_s']:g} s",
                   [100 * v for v in row["cpu_cores"]], id="2.3", scenario="heartbeat", size=size_of([row]),
                   unit="% of a core", digits=1)
    if len(rows) > 1:
        claims.add("gateway CPU per extra heartbeat (slope between the intervals)", marginal_us_per_heartbeat(rows),
                   id="2.3", scenario="heartbeat", size=size_of(rows), unit="µs", digits=1)


def claim_unicast(claims, rows: list[dict]) -> None:
    for row in rows:
        size = size_of([row])
        what = f"{row['gateways']} gateway process{'es' if row['gateways'] > 1 else ''}, {row['rate']:g} pushes/s"
        claims.add(f"unicast end to end p99, {what}", row["p99_ms"], id="2.4", scenario="unicast", size=size,
                   unit="ms", digits=1)
        claims.add(f"unicast delivered a second, {what}", row["per_s"], id="2.4", scenario="unicast", size=size,
                   unit="per s", digits=1)
