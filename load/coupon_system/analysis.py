"""Chapter 3's numbers from its runs: what notebooks/03-coupon-system.ipynb plots and what its
``claims.csv`` quotes, as plain functions of run dicts (``results.load_runs``).

Every number is measured once per repetition: the ``*_rows`` functions return one row per
setting (strategy, database, rate, ...) whose values are lists, one per repetition.
"""
import math
from pathlib import Path

from load import results

STRATEGIES = ["naive", "atomic", "reservation"]
CORRECT = ["atomic", "reservation"]
PARTS = ["web tier and network", "handler", "db", "redis", "broker"]   # where a claim's time goes
BULK_SLOWDOWN_LIMIT = 1.2    # the issue: claims slow by at most 20% while a bulk issuance runs


# --- one run --------------------------------------------------------------------------------

def audit(run: dict) -> dict:
    """What the scenario counted after the run, from the raw rows (audit.json)."""
    return results.read_json(Path(run["dir"]) / "audit.json")


def arrivals(run: dict) -> int:
    """Users who arrived (each a distinct user id), from the load generator's own count."""
    pacing = run.get("pacing") or {}
    return pacing.get("iterations", 0) + pacing.get("ramping", 0)


def claim_times_ms(run: dict) -> list[float]:
    times = results.response_times_ms(run, "claim")
    if not times:
        raise ValueError(f"run {run['dir']} recorded no answered claim")
    return times


def time_split_ms(run: dict) -> dict:
    """Mean milliseconds a claim spent in each part: the service's own timings (database, Redis,
    broker, the rest of the handler) and what the client waited beyond the handler (the web
    tier: HTTP parsing, waitress's queue for a thread, the loopback)."""
    timings = results.read_json(Path(run["dir"]) / "service.json")["timings"]
    claims = max(1, timings.get("handler", {}).get("calls", 0))
    per_claim = {part: 1000 * timings.get(part, {}).get("seconds", 0.0) / claims for part in ("db", "redis", "broker")}
    handler = 1000 * timings.get("handler", {}).get("seconds", 0.0) / claims
    times = claim_times_ms(run)
    return {"web tier and network": max(0.0, sum(times) / len(times) - handler),
            "handler": max(0.0, handler - sum(per_claim.values())), **per_claim}


def write_series(run: dict, when: str = "issued_at") -> tuple[list[int], list[int]]:
    """Rows written per second (``issued_at``) or coupons granted per second (``reserved_at``),
    from the first grant of the run: the database's write rate over time."""
    rows = results.read_csv(Path(run["dir"]) / "writes.csv")
    if not rows:
        return [], []
    t0 = min(float(row["reserved_at"]) for row in rows)
    counts: dict[int, int] = {}
    for row in rows:
        second = int(float(row[when]) - t0)
        counts[second] = counts.get(second, 0) + 1
    seconds = list(range(max(counts) + 1))
    return seconds, [counts.get(second, 0) for second in seconds]


def bulk_progress(run: dict) -> tuple[list[float], list[int]]:
    """A bulk issuance's users issued over time (s since the first sample, count)."""
    samples = [row for row in results.read_samples(run) if "issued" in row]
    if not samples:
        return [], []
    t0 = samples[0]["t"]
    return [row["t"] - t0 for row in samples], [row["issued"] + row.get("refused", 0) for row in samples]


# --- one row per setting, one value per repetition ------------------------------------------

def crowd_rows(runs: list[dict]) -> list[dict]:
    """The flash crowd, one row per (database, strategy): the audit's counts, arrivals, claims
    answered with a coupon, the claims' median and p99 (ms), and the drain (reservation, s)."""
    def measure(run):
        counted, times = audit(run), claim_times_ms(run)
        return {"oversold": counted["oversold"], "double_claims": counted["double_claims"],
                "double_redeems": counted["double_redeems"], "coupons": counted["coupons"],
                "successes": counted["successes"], "successes_without_row": counted["successes_without_row"],
                "users_given_two_codes": counted["users_given_two_codes"], "arrivals": arrivals(run),
                "median_ms": results.percentile(times, 0.5), "p99_ms": results.percentile(times, 0.99),
                "drain_s": run["notes"].get("drain_s", math.nan)}
    rows = results.per_repetition(runs, ("database", "strategy"), measure)
    return sorted(rows, key=lambda row: (row["database"], STRATEGIES.index(row["strategy"])))


def throughput_rows(runs: list[dict]) -> list[dict]:
    """The throughput scenario, one row per (database, service processes, rate, strategy):
    claims a second, median and p99 (ms), and the mean time split of a claim (ms per part)."""
    def measure(run):
        times = claim_times_ms(run)
        return {"per_s": run["summary"]["throughput_per_s"], "median_ms": results.percentile(times, 0.5),
                "p99_ms": results.percentile(times, 0.99), "split": time_split_ms(run)}
    rows = results.per_repetition(runs, ("database", "service_processes", "arrival_rate", "strategy"), measure)
    return sorted(rows, key=lambda row: (row["database"], row["service_processes"], row["arrival_rate"],
                                         STRATEGIES.index(row["strategy"])))


def bulk_rows(runs: list[dict]) -> list[dict]:
    """The bulk scenario, one row per bulk size (0: claims alone): claim median and p99 (ms) and
    the bulk job's progress over time."""
    def measure(run):
        times = claim_times_ms(run)
        seconds, issued = bulk_progress(run)
        return {"median_ms": results.percentile(times, 0.5), "p99_ms": results.percentile(times, 0.99),
                "progress_s": seconds, "progress_users": issued}
    return results.per_repetition(runs, ("bulk_users",), measure)


def bulk_slowdown(rows: list[dict]) -> list[float]:
    """Claim p99 with the bulk issuance over claim p99 alone, per repetition."""
    alone = next(row for row in rows if row["bulk_users"] == 0)
    loaded = next(row for row in rows if row["bulk_users"] > 0)
    return results.paired_ratios(loaded, alone, "p99_ms")


# --- claims.csv -----------------------------------------------------------------------------

def _where(row: dict) -> dict:
    return {"scenario": row["runs"][0]["scenario"], "size": row["runs"][0]["size"]}


def claim_crowd(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 3.1: oversold coupons and double claims per strategy (the correct ones exactly 0;
    the naive one, broken on purpose, more), successes without a row, arrivals."""
    for row in rows:
        what, where = f"{row['strategy']} on {row['database']}", _where(row)
        stock = row["runs"][0]["params"]["stock"]
        correct = row["strategy"] in CORRECT
        claims.add(f"{what}: coupons oversold, stock {stock:,}", row["oversold"], id="3.1", article=0 if correct else "",
                   unit="coupons", digits=0, match="exact" if correct else "range",
                   note="" if correct else "broken on purpose: read-check-write, 8 threads, autocommit", **where)
        claims.add(f"{what}: users holding two coupons of the batch", row["double_claims"], id="3.1" if correct else "",
                   article=0 if correct else "", unit="users", digits=0, match="exact" if correct else "range", **where)
        claims.add(f"{what}: successes without a row after the drain", row["successes_without_row"], unit="claims",
                   digits=0, match="exact", **where)
        claims.add(f"{what}: distinct users arriving", row["arrivals"], unit="users", digits=0, **where)
        if correct:
            claims.add(f"{what}: coupons issued", row["coupons"], unit="coupons", digits=0, match="exact", **where)


def claim_throughput(claims: results.Claims, rows: list[dict]) -> None:
    """Ledger 3.2: claims a second per strategy (and their p99), per rate, database, processes."""
    for row in rows:
        what = (f"{row['strategy']} on {row['database']}, {row['service_processes']} process"
                f"{'es' if row['service_processes'] > 1 else ''}, {row['arrival_rate']} arrivals/s")
        claims.add(f"{what}: claims per second", row["per_s"], id="3.2", unit="/s", **_where(row))
        claims.add(f"{what}: claim p99", row["p99_ms"], unit="ms", **_where(row))


def claim_rules(claims: results.Claims, shipped: int, core_imports: int, where: dict) -> None:
    """Ledger 3.3: the rule kinds shipped as plug-ins, and the core modules importing one (0)."""
    claims.add("rule kinds shipped as plug-in modules", shipped, id="3.3", unit="rules", digits=0, match="exact", **where)
    claims.add("core modules that import a rule module", core_imports, id="3.3", article=0, unit="modules", digits=0,
               match="exact", **where)


def claim_bulk(claims: results.Claims, rows: list[dict]) -> None:
    """Claim p99 alone and with a bulk issuance running, and their ratio (the issue: at most 1.2x)."""
    for row in rows:
        label = "alone" if row["bulk_users"] == 0 else f"while {row['bulk_users']:,} users are bulk-issued"
        claims.add(f"claim p99 {label}", row["p99_ms"], unit="ms", **_where(row))
    claims.add("claim p99 with bulk / alone", bulk_slowdown(rows), article=f"<= {BULK_SLOWDOWN_LIMIT}x", unit="x",
               digits=2, **_where(rows[0]))


def rules_report() -> tuple[int, int]:
    """Ledger 3.3 from the code itself: the rule kinds the registry finds in the rules package, and
    how many core modules (demos/coupon_system/*.py) import a rule module (the design says 0)."""
    import ast

    from demos.coupon_system import registry
    core = Path(registry.__file__).parent
    shipped = sum(1 for path in (core / "rules").glob("*.py") if path.stem != "__init__")
    registry.load()
    importing = 0
    for path in core.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names |= {f"{node.module or ''}.{alias.name}" for alias in node.names} | {node.module or ""}
        importing += any("rules" in name.split(".") for name in names)
    return shipped, importing
