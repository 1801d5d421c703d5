"""Chapter 3's analysis on small hand-made runs: the audit's rows, the time split, the write rate
over time, the bulk slowdown, and the claims the ledger quotes (zero counts matched exactly)."""
import csv
import json

import pytest

from load import results
from load.coupon_system import analysis


def make_run(tmp_path, name, *, strategy="atomic", rep=1, times=(1.0, 2.0, 3.0), audit=None, service=None,
             writes=(), params=None, scenario="flash-crowd", summary=None, notes=None):
    folder = tmp_path / scenario / name / f"rep-{rep}"
    (folder / "raw").mkdir(parents=True)
    with open(folder / "raw" / "requests-1.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["start_time", "name", "response_time_ms", "ok", "response_length"])
        writer.writerows([[100 + i, "claim", t, 1, 10] for i, t in enumerate(times)])
    (folder / "audit.json").write_text(json.dumps(audit or {}))
    (folder / "service.json").write_text(json.dumps(service or {"timings": {}}))
    with open(folder / "writes.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["reserved_at", "issued_at", "via"])
        writer.writerows(writes)
    meta = {"run": name, "scenario": scenario, "size": "smoke", "repetition": rep, "valid": True,
            "params": {"strategy": strategy, "database": "sqlite", "stock": 10, **(params or {})},
            "pacing": {"iterations": 90, "ramping": 10}, "notes": notes or {}}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "summary.json").write_text(json.dumps(summary or {"throughput_per_s": 100.0}))
    return folder


AUDIT = {"oversold": 0, "double_claims": 0, "double_redeems": 0, "coupons": 10, "successes": 10,
         "successes_without_row": 0, "users_given_two_codes": 0}


def test_crowd_rows_carry_the_audit_and_arrivals_per_repetition(tmp_path):
    make_run(tmp_path, "naive-sqlite", strategy="naive", audit={**AUDIT, "oversold": 7, "double_claims": 2, "coupons": 17})
    make_run(tmp_path, "atomic-sqlite", audit=AUDIT)
    make_run(tmp_path, "atomic-sqlite", rep=2, audit=AUDIT)
    rows = analysis.crowd_rows(results.load_runs(tmp_path, "flash-crowd"))
    assert [row["strategy"] for row in rows] == ["naive", "atomic"]
    assert rows[0]["oversold"] == [7] and rows[0]["double_claims"] == [2]
    assert rows[1]["oversold"] == [0, 0] and rows[1]["arrivals"] == [100, 100]
    assert rows[1]["p99_ms"] == [3.0, 3.0]
    claims = results.Claims()
    analysis.claim_crowd(claims, rows)
    ledger = [row for row in claims.rows if row["id"] == "3.1"]
    assert [(row["measured"], row["match"]) for row in ledger] == [("7", "range"), ("0", "exact"), ("0", "exact")]


def test_the_time_split_puts_the_wait_beyond_the_handler_in_the_web_tier(tmp_path):
    service = {"timings": {"handler": {"seconds": 0.004, "calls": 2}, "db": {"seconds": 0.001, "calls": 2},
                           "redis": {"seconds": 0.002, "calls": 2}}}
    make_run(tmp_path, "r", times=(5.0, 7.0), service=service)
    split = analysis.time_split_ms(results.load_runs(tmp_path, "flash-crowd")[0])
    assert split == pytest.approx({"web tier and network": 4.0, "handler": 0.5, "db": 0.5, "redis": 1.0, "broker": 0.0})


def test_the_write_series_counts_rows_per_second_from_the_first_grant(tmp_path):
    writes = [(10.0, 10.2, "x"), (10.5, 11.1, "x"), (10.9, 12.5, "x"), (11.0, 12.9, "x")]
    make_run(tmp_path, "r", writes=writes)
    run = results.load_runs(tmp_path, "flash-crowd")[0]
    assert analysis.write_series(run, "reserved_at") == ([0, 1], [3, 1])
    assert analysis.write_series(run) == ([0, 1, 2], [1, 1, 2])


def test_the_bulk_slowdown_is_paired_by_repetition(tmp_path):
    for rep, (alone, loaded) in enumerate([((1, 10), (1, 11)), ((1, 20), (1, 30))], 1):
        make_run(tmp_path, "claims-alone", rep=rep, times=alone, scenario="bulk", params={"bulk_users": 0})
        make_run(tmp_path, "claims-with-bulk-5", rep=rep, times=loaded, scenario="bulk", params={"bulk_users": 5})
    rows = analysis.bulk_rows(results.load_runs(tmp_path, "bulk"))
    assert analysis.bulk_slowdown(rows) == pytest.approx([1.1, 1.5])


def test_the_rules_report_finds_the_shipped_rules_and_no_core_import():
    shipped, importing = analysis.rules_report()
    assert shipped >= 4 and importing == 0
