"""Chapter 4's analysis on hand-made runs and timelines: the nearest-rank median, the backlog
series, per-repetition throughput ratios, and the ledger ids in claims.csv."""
import math

import pytest

from load import results
from load.message_queues import analysis

TIMELINE = [   # three registrations: two jobs each; the last one's e-mail never sent
    {"user_id": "1", "registered_at": "100.0", "email_sent_at": "100.05", "sms_sent_at": "100.2"},
    {"user_id": "2", "registered_at": "100.1", "email_sent_at": "100.3", "sms_sent_at": "100.4"},
    {"user_id": "3", "registered_at": "101.0", "email_sent_at": "", "sms_sent_at": "101.5"},
]


def test_the_median_latency_is_nearest_rank_over_successful_registrations(make_run):
    run = make_run("serial", {"variant": "serial"}, requests=[
        ("/register", 10, True), ("/register", 40, True), ("/register", 20, True), ("/register", 30, True),
        ("/register", 1, False), ("/health", 2, True)])
    assert analysis.median_latency_ms(run) == 20          # not 25: no averaging of the two middle values
    with pytest.raises(ValueError, match="no successful request"):
        analysis.median_latency_ms(make_run("empty", {"variant": "serial"}, requests=[("/register", 1, False)]))


def test_backlog_series_adds_two_jobs_a_registration_and_takes_one_off_a_send():
    times, counts = analysis.backlog_series(TIMELINE)
    assert times == pytest.approx([0.0, 0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 1.0, 1.5])
    assert counts == [0, 2, 1, 3, 2, 1, 0, 2, 1]


def test_email_delays_and_arrival_rate_from_the_timeline():
    assert analysis.email_delays_ms(TIMELINE) == pytest.approx([50, 200])
    assert analysis.arrivals_per_s(TIMELINE) == pytest.approx(2 / 1.0)
    assert math.isnan(analysis.arrivals_per_s(TIMELINE[:1]))


def saturation_run(make_run, variant, threads, rep, per_s):
    return make_run(f"{variant}-t{threads}", {"variant": variant, "threads": threads}, rep,
                    summary={"throughput_per_s": per_s}, scenario="saturation")


def test_throughput_ratios_pair_repetitions_and_a_missing_variant_is_named(make_run):
    runs = [saturation_run(make_run, variant, threads, rep, per_s)
            for variant, threads, rep, per_s in [
                ("queued", 1, 1, 18.0), ("queued", 1, 2, 20.0), ("serial", 1, 2, 5.0), ("serial", 1, 1, 6.0),
                ("parallel", 1, 1, 9.0), ("parallel", 1, 2, 10.0), ("serial", 4, 1, 24.0)]]
    rows = analysis.throughput_rows(runs)
    assert [(row["threads"], row["variant"]) for row in rows] == [(1, "serial"), (1, "parallel"), (1, "queued"),
                                                                  (4, "serial")]
    assert rows[0]["per_s"] == [6.0, 5.0]                            # repetition 1, then 2
    ratios = analysis.throughput_ratios(rows)
    assert ratios["serial"] == pytest.approx([3.0, 4.0]) and ratios["parallel"] == pytest.approx([2.0, 2.0])
    with pytest.raises(ValueError, match="no one-thread saturation run for parallel"):
        analysis.throughput_ratios([row for row in rows if row["variant"] != "parallel"])


def test_backlog_rows_read_the_timeline_and_tolerate_a_run_without_drain_time(make_run):
    run = make_run("queued-r5", {"variant": "queued", "arrival_rate": 5}, files={"timeline.csv": TIMELINE},
                   requests=[("/register", 55, True)], notes={"drain_s": 1.5}, scenario="backlog")
    older = make_run("queued-r5", {"variant": "queued", "arrival_rate": 5}, 2, files={"timeline.csv": TIMELINE},
                     requests=[("/register", 57, True)], scenario="backlog")
    [row] = analysis.backlog_rows([older, run])
    assert row["peak_jobs"] == [3, 3] and row["answered_ms"] == [55, 57]
    assert row["median_email_ms"] == pytest.approx([50, 50]) and row["p95_email_ms"] == pytest.approx([200, 200])
    assert row["drain_s"][0] == 1.5 and math.isnan(row["drain_s"][1])
    claims = results.Claims()
    analysis.claim_backlog(claims, [row])
    drained = [c for c in claims.rows if c["claim"].startswith("backlog drained")]
    assert [(c["id"], c["measured"], c["runs"]) for c in drained] == [("4.4", "1.5", 1)]    # NaN left out
    analysis.claim_backlog(claims, [{**row, "drain_s": [math.nan]}])     # a set that never timed it
    assert len([c for c in claims.rows if c["claim"].startswith("backlog drained")]) == 1


def test_claims_carry_the_ledger_ids_with_the_articles_numbers(make_run, tmp_path):
    latency = [make_run(variant, {"variant": variant}, requests=[("/register", ms, True)], scenario="latency")
               for variant, ms in (("serial", 153.71), ("parallel", 103.9), ("queued", 54.0))]
    saturation = [saturation_run(make_run, variant, 1, 1, per_s)
                  for variant, per_s in (("serial", 6.54), ("parallel", 9.73), ("queued", 18.79))]
    claims = results.Claims()
    analysis.claim_latency(claims, analysis.latency_rows(latency))
    analysis.claim_throughput(claims, analysis.throughput_rows(saturation))
    rows = results.read_claims(claims.write(tmp_path / "claims.csv"))
    quoted = [(c["id"], c["article"], c["measured"], c["scenario"]) for c in rows]
    assert quoted == [("4.1", "150", "153.7", "latency"), ("4.1", "100", "103.9", "latency"),
                      ("4.1", "50", "54.0", "latency"),
                      ("4.2", "7", "6.54", "saturation"), ("4.2", "10", "9.73", "saturation"),
                      ("4.2", "20", "18.79", "saturation"),
                      ("4.3", "3x", "2.87", "saturation"), ("4.3", "2x", "1.93", "saturation")]
    assert {c["size"] for c in rows} == {"smoke"}
