"""Sections 2 and 3's numbers from hand-made runs (load/message_queues/analysis.py)."""
import math

from load.message_queues import analysis


def rows(*items):
    return [{"start_time": t, "name": name, "response_time_ms": ms, "ok": ok} for t, name, ms, ok in items]


def test_per_second_bins_success_and_the_median_of_those_that_succeeded():
    raw = rows((100.1, "a", 10, True), (100.9, "a", 30, False), (101.5, "a", 20, True), (103.2, "a", 5, False))
    seconds, ok, median = analysis.per_second(raw, 100.0)
    assert seconds == [0, 1, 3]
    assert ok == [0.5, 1.0, 0.0]
    assert median[:2] == [10, 20] and math.isnan(median[2])


def test_success_between_counts_only_the_requests_started_inside():
    raw = rows((1, "a", 1, True), (2, "a", 1, False), (3, "a", 1, False), (4, "a", 1, True))
    assert analysis.success_between(raw, 2, 4) == 0.0
    assert analysis.success_between(raw, 0, 10) == 0.5
    assert math.isnan(analysis.success_between(raw, 10, 20))


def test_rate_series_fills_the_empty_seconds():
    assert analysis.rate_series([10.1, 10.2, 12.5], 10.0) == ([0, 1, 2], [2, 0, 1])
    assert analysis.rate_series([], 0.0) == ([], [])


def test_flatness_is_the_largest_deviation_over_the_whole_seconds():
    evenly = [i / 50 for i in range(150)]                       # 50 a second for 3 s
    assert analysis.flatness(evenly, 50) == 0
    uneven = [i / 50 for i in range(50)] + [1 + i / 40 for i in range(40)] + [2.5]
    assert analysis.flatness(uneven, 50) == 20                  # the second second: 40, 20% short
    assert math.isnan(analysis.flatness([1.0], 50))


def audit_row(**changes):
    row = {"confirmed": [7], "deducted": [5], "cancelled": [2], "undecided": [0],
           "inventory_deducted": [5], "inventory_cancelled": [2]}
    return {**row, **changes}


def test_the_audit_adds_up_only_when_every_count_agrees():
    assert analysis.adds_up(audit_row())
    assert not analysis.adds_up(audit_row(undecided=[1], confirmed=[8]))       # one never decided
    assert not analysis.adds_up(audit_row(inventory_deducted=[6]))             # a deduction without its order
    assert not analysis.adds_up(audit_row(confirmed=[7, 7], deducted=[5, 4], cancelled=[2, 2], undecided=[0, 0],
                                          inventory_deducted=[5, 4], inventory_cancelled=[2, 2]))


def pubsub_run(tmp_path, wiring, consumers, published, received):
    (tmp_path / "received.csv").write_text("n,consumer,pid,received_at\n" + "".join(
        f"{n},{consumer},1,{t}\n" for n, consumer, t in received))
    return {"dir": tmp_path, "params": {"wiring": wiring, "consumers": consumers}, "notes": {"published": published}}


def test_competing_consumers_count_a_message_given_twice_and_one_never_given(tmp_path):
    run = pubsub_run(tmp_path, "competing", 2, 4, [(1, "c1", 0.0), (2, "c2", 0.5), (2, "c1", 1.0)])
    measured = analysis.pubsub_measure(run)
    assert (measured["repeats"], measured["missing"]) == (1, 2)
    assert measured["per_s"] == 2.0 and measured["deliveries_per_message"] == 0.75


def test_a_fanout_counts_per_subscriber_and_a_subscriber_that_got_nothing(tmp_path):
    run = pubsub_run(tmp_path, "fanout", 3, 2, [(1, "c1", 0.0), (2, "c1", 1.0), (1, "c2", 0.0), (1, "c2", 0.5)])
    measured = analysis.pubsub_measure(run)
    assert measured["repeats"] == 1                       # c2 got 1 twice
    assert measured["missing"] == 1 + 2                   # c2 lacks 2; c3 never got anything
    assert measured["deliveries_per_message"] == 2.0


def test_the_log_claims_pair_the_repetitions(tmp_path):
    from load import results
    rows = {"slow-aggregator": {"runs": [{"scenario": "log-pipeline", "size": "smoke", "repetition": r,
                                          "notes": {"broker_url": "filesystem"}} for r in (1, 2)],
                                "p99_ms": [20.0, 30.0], "peak_queue": [100, 120], "lost": [1, 0], "drain_s": [2.0, 3.0]},
            "no-aggregator": {"runs": [{"scenario": "log-pipeline", "size": "smoke", "repetition": r} for r in (1, 2)],
                              "p99_ms": [10.0, 30.0]}}
    claims = results.Claims()
    analysis.claim_logs(claims, rows)
    ratio = claims.rows[0]
    assert (ratio["id"], ratio["low"], ratio["high"]) == ("4.8", "1.00", "2.00")
    assert [row["claim"] for row in claims.rows if row["id"] == "4.8"][1:] == [
        "slow aggregator: lines waiting in the queue at the peak", "slow aggregator SIGKILLed: lines lost on filesystem"]
