"""Chapter 6's numbers from its runs: what notebooks/06-high-availability.ipynb plots and what its
``claims.csv`` quotes, as plain functions of run dicts (``results.load_runs``) and of the files a
run leaves: ``probe.csv`` (every 20 ms request to the virtual IP, demos/high_availability/probe.py),
``holders.csv`` (who holds the address, every 0.1 s), ``ha/<node>/events.csv`` (keepalived's state
changes, from its notify script), ``ha/<node>/checks.csv`` (every health check's result) and
``ha/<node>/access.tsv`` (nginx's log: every request and the backends it tried).

A failover's gap is split in the steps the article's 4 s is one of:

- fault -> detection: the check's ``fall`` x interval (nginx killed: the time of the fall-th failed
  check in a row), or the missed adverts (keepalived killed, link cut: the backup's advert timeout,
  which is the moment it becomes master), or nothing (keepalived stopped: it tells the backup);
- detection -> new master: the backup's notify script says MASTER (the article's "about 4 s");
- new master -> first served: the first probe the new master's nginx answers.
"""
import math
from pathlib import Path
from typing import Optional

from load import results

MASTER, BACKUP = "lb1", "lb2"
ARTICLE_GAP_S = 4.0          # the article's logs: failed check to the backup's MASTER state, about 4 s
# the ledger's row 6.2 quotes these: the article's settings and the fastest, nginx killed and keepalived SIGKILLed
LEDGER_RUNS = {("nginx-kill", "article"), ("nginx-kill", "vrrp3-fast"), ("keepalived-sigkill", "vrrp3-fast")}
CHECKED = ("nginx-kill", "master-return")   # faults the health check detects
TOLD = ("keepalived-stop",)                  # faults the failing node announces (priority 0)


# --- reading one run ------------------------------------------------------------------------

def _rows(run: dict, *parts: str) -> list[dict]:
    path = Path(run["dir"], *parts)
    return results.read_csv(path) if path.exists() else []


def read_probe(run: dict) -> list[dict]:
    """The probe's requests, in the order sent: sent_at, done_at (float), ok (bool), balancer, backend."""
    rows = [{**row, "sent_at": float(row["sent_at"]), "done_at": float(row["done_at"]), "ok": row["ok"] == "1"}
            for row in _rows(run, "probe.csv")]
    if not rows:
        raise ValueError(f"no probe.csv (or an empty one) in {run['dir']}")
    return sorted(rows, key=lambda row: row["sent_at"])


def read_events(run: dict, node: str) -> list[tuple[float, str]]:
    """keepalived's state changes on ``node``: (epoch seconds, MASTER / BACKUP / FAULT / STOP)."""
    return [(float(row["t"]), row["state"]) for row in _rows(run, "ha", node, "events.csv")]


def read_checks(run: dict, node: str) -> list[tuple[float, bool]]:
    """Every health check on ``node``: (epoch seconds, passed)."""
    return [(float(row["t"]), row["result"] == "ok") for row in _rows(run, "ha", node, "checks.csv")]


def read_holders(run: dict) -> list[dict]:
    """Who held the virtual IP, per sample: {"t": float, "lb1": 0/1, "lb2": 0/1}."""
    return [{key: float(value) if key == "t" else int(value) for key, value in row.items()}
            for row in _rows(run, "holders.csv")]


def read_access(run: dict, node: str = MASTER) -> list[dict]:
    """nginx's access log: t, status, method, upstreams (the backends tried, in order)."""
    path = Path(run["dir"], "ha", node, "access.tsv")
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        t, status, method, upstream = line.split("\t")[:4]
        # "$upstream_addr": the backends tried, ", " between tries (" : " between upstream groups)
        tried = [part.strip() for part in upstream.replace(" : ", ", ").split(",") if part.strip() not in ("", "-")]
        rows.append({"t": float(t), "status": int(status), "method": method, "upstreams": tried})
    return rows


def fault_at(run: dict) -> float:
    faults = run["notes"].get("faults") or []
    if not faults or faults[0].get("killed_at") is None:
        raise ValueError(f"run {run['dir']} recorded no fault")
    return faults[0]["killed_at"]


# --- a failover in steps --------------------------------------------------------------------

def detection_time(checks: list[tuple[float, bool]], after: float, fall: int) -> Optional[float]:
    """When the check counted as failed: the ``fall``-th failed check in a row after ``after``."""
    streak = 0
    for t, passed in checks:
        if t < after:
            continue
        streak = 0 if passed else streak + 1
        if streak == fall:
            return t
    return None


def first_state(events: list[tuple[float, str]], state: str, after: float) -> Optional[float]:
    return next((t for t, seen in events if seen == state and t >= after), None)


def outage(probe: list[dict], after: float) -> dict:
    """What the probe saw after ``after``: failed requests, and the seconds without service (from
    the first failed request sent to the next successful one sent; 0 when none failed)."""
    later = [row for row in probe if row["sent_at"] >= after]
    failed = [row for row in later if not row["ok"]]
    if not failed:
        return {"failed": 0, "outage_s": 0.0}
    first_failed = failed[0]["sent_at"]
    recovered = next((row["sent_at"] for row in later if row["ok"] and row["sent_at"] > first_failed), None)
    end = recovered if recovered is not None else later[-1]["sent_at"]
    return {"failed": len(failed), "outage_s": end - first_failed}


def failover_steps(run: dict) -> dict:
    """The gap after the run's fault, in steps (seconds; NaN for a step that did not happen):
    ``detection_s``, ``election_s`` (detection -> new master), ``serve_s`` (new master -> its first
    answer), ``total_s`` (fault -> the new master's first answer), and what the probe saw:
    ``failed`` requests and ``outage_s``; ``two_holders_s``: how long both nodes held the address."""
    p = run["params"]
    start = fault_at(run)
    probe = read_probe(run)
    new_master = first_state(read_events(run, BACKUP), "MASTER", start)
    if p["fault"] in CHECKED:
        detected = detection_time(read_checks(run, MASTER), start, p["fall"])
    elif p["fault"] in TOLD:
        detected = start
    else:
        detected = new_master                       # missed adverts: the timeout makes it master
    served = next((row["done_at"] for row in probe
                   if row["ok"] and row["balancer"] == BACKUP and new_master is not None
                   and row["done_at"] >= new_master), None)
    nan = math.nan
    step = lambda a, b: (b - a) if a is not None and b is not None else nan
    holders = read_holders(run)
    every = (holders[-1]["t"] - holders[0]["t"]) / (len(holders) - 1) if len(holders) > 1 else 0.0
    return {"fault_at": start, "detected_at": detected, "new_master_at": new_master, "served_at": served,
            "detection_s": step(start, detected), "election_s": step(detected, new_master),
            "serve_s": step(new_master, served), "total_s": step(start, served),
            **outage(probe, start),
            "two_holders_s": every * sum(1 for row in holders if row.get(MASTER) and row.get(BACKUP)),
            **master_return(run, probe)}


def master_return(run: dict, probe: list[dict]) -> dict:
    """After a ``master-return`` run's restart of lb1's nginx: how long until lb1 was master again
    (``return_s``, NaN when it never took the address back: nopreempt), and the probe's requests
    that failed from the restart on (``return_failed``; NaN for other faults)."""
    fault = run["notes"]["faults"][0]
    if run["params"]["fault"] != "master-return" or not fault.get("ready_at"):
        return {"return_s": math.nan, "return_failed": math.nan}
    back = first_state(read_events(run, MASTER), "MASTER", fault["ready_at"])
    if back is not None and back > probe[-1]["sent_at"]:
        back = None                # after the load: the run's end stopping lb2, not a return
    return {"return_s": back - fault["ready_at"] if back is not None else math.nan,
            "return_failed": sum(1 for row in probe if row["sent_at"] >= fault["ready_at"] and not row["ok"])}


# --- series for the figures -----------------------------------------------------------------

def per_second(times_ok: list[tuple[float, bool]], t0: float) -> tuple[list[int], list[int], list[int]]:
    """Whole seconds since ``t0``, and the requests and failures started in each."""
    if not times_ok:
        return [], [], []
    last = int(max(t for t, _ in times_ok) - t0)
    requests, failures = [0] * (last + 1), [0] * (last + 1)
    for t, ok in times_ok:
        second = int(t - t0)
        if 0 <= second <= last:
            requests[second] += 1
            failures[second] += not ok
    return list(range(last + 1)), requests, failures


def locust_series(run: dict, t0: float):
    rows = results.read_raw(Path(run["dir"], "raw"))
    return per_second([(row["start_time"], row["ok"]) for row in rows], t0)


def probe_series(run: dict, t0: float):
    return per_second([(row["sent_at"], row["ok"]) for row in read_probe(run)], t0)


def run_start(run: dict) -> float:
    """The first probe request: the zero of a run's time axis."""
    return read_probe(run)[0]["sent_at"]


def holder_series(run: dict, t0: float) -> dict:
    """Per node, the seconds since ``t0`` and 1 / 0 (holds the address or not)."""
    holders = read_holders(run)
    return {node: ([row["t"] - t0 for row in holders], [row[node] for row in holders]) for node in (MASTER, BACKUP)}


def backend_shares(run: dict, t0: float, bin_s: float = 1.0) -> dict:
    """Per backend, the probe's answers it served per ``bin_s`` (seconds since ``t0``)."""
    probe = read_probe(run)
    last = int((probe[-1]["sent_at"] - t0) / bin_s)
    shares: dict = {}
    for row in probe:
        if row["ok"] and row["backend"]:
            counts = shares.setdefault(row["backend"], [0] * (last + 1))
            index = int((row["sent_at"] - t0) / bin_s)
            if 0 <= index <= last:
                counts[index] += 1
    return {name: ([k * bin_s for k in range(last + 1)], counts) for name, counts in sorted(shares.items())}


def retried(run: dict) -> int:
    """Requests nginx sent to more than one backend (proxy_next_upstream at work)."""
    return sum(1 for row in read_access(run) if len(row["upstreams"]) > 1)


# --- one row per setting, one value per repetition ------------------------------------------

def backend_rows(runs: list[dict]) -> list[dict]:
    """The backend-death scenario, one row per variant: Locust's requests and failures, the
    probe's failures, and the requests nginx retried on another backend."""
    def measure(run):
        probe = read_probe(run)
        return {"requests": run["summary"].get("requests", 0), "failures": run["summary"].get("failures", 0),
                "probe_failed": sum(not row["ok"] for row in probe), "retried": retried(run)}
    return results.per_repetition(runs, ("variant",), measure)


def failover_rows(runs: list[dict]) -> list[dict]:
    """The failover scenario, one row per (fault, setting, check style, preempt): its steps per repetition, and
    Locust's failed requests."""
    def measure(run):
        return {**{key: value for key, value in failover_steps(run).items()
                   if key.endswith("_s") or key in ("failed", "return_failed")},
                "locust_failures": run["summary"].get("failures", 0)}
    return results.per_repetition(runs, ("fault", "setting", "style", "preempt"), measure)


# --- claims.csv -----------------------------------------------------------------------------

def _where(row: dict) -> dict:
    return {"scenario": row["runs"][0]["scenario"], "size": row["runs"][0]["size"]}


def claim_backend(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 6.1: failed requests when a backend dies under load with proxy_next_upstream at its
    default (must be 0, exactly), and the requests nginx retried; the other variants beside it."""
    for row in rows:
        where, variant = _where(row), row["variant"]
        if variant == "get-retry":
            claims.add("failed requests when a backend dies, proxy_next_upstream default (GET)", row["failures"],
                       id="6.1", article=0, unit="requests", digits=0, match="exact", **where)
            claims.add("requests nginx retried on another backend", row["retried"], id="6.1", unit="requests",
                       digits=0, **where)
        else:
            claims.add(f"failed requests when a backend dies, {variant}", row["failures"], unit="requests",
                       digits=0, **where)


def claim_failover(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 6.2: with the article's settings, the failed check to the new master (the article's
    about 4 s) and the fault to the first request served; with the fastest, the fault to the first
    request served when nginx is killed and when keepalived is SIGKILLed; every other row's steps
    beside them (not in the ledger)."""
    for row in rows:
        label = (f"{row['fault']}, {row['setting']}" + (f", {row['style']} style" if row["style"] != "priority" else "")
                 + ("" if row["preempt"] else ", nopreempt"))
        where, preferred = _where(row), row["style"] == "priority" and row["preempt"]
        ledger = "6.2" if preferred and (row["fault"], row["setting"]) in LEDGER_RUNS else ""
        values = lambda name: [value for value in row[name] if not math.isnan(value)]
        if row["fault"] == "nginx-kill" and values("election_s"):
            claims.add(f"failed check to new master, {label}", values("election_s"),
                       id=ledger if row["setting"] == "article" else "",
                       article=ARTICLE_GAP_S if row["setting"] == "article" else "", unit="s", digits=2, **where)
        if values("total_s"):
            claims.add(f"fault to first request served by the backup, {label}", values("total_s"), id=ledger,
                       unit="s", digits=2, **where)
        claims.add(f"probe requests failed, {label}", row["failed"], unit="requests", digits=0, **where)
        if values("return_s"):
            claims.add(f"master's nginx back to master again, {label}", values("return_s"), unit="s", digits=2, **where)
        if values("return_failed"):
            claims.add(f"probe requests failed while the master came back, {label}", values("return_failed"),
                       unit="requests", digits=0, **where)
