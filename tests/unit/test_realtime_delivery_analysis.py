"""Chapter 1's analysis on hand-made runs: which requests count, the steady window, the
publisher-only baseline, per-repetition rows and ratios, and the ledger ids in claims.csv."""
import math

import pytest

from load import results
from load.realtime_delivery import analysis

WINDOW = {"steady_window": [10.0, 12.0]}


def cpu_samples(deliveries_per_s, cpu_per_s, key="deliveries.websocket"):
    """Samples once a second; outside the steady window [10, 12] the counters jump, so a
    function that ignores the window gets a very different answer."""
    inside = [{"t": 10.0 + s, key: deliveries_per_s * s, "process.cpu_s": 1.0 + cpu_per_s * s} for s in (0, 1, 2)]
    return [{"t": 5.0, key: -10_000, "process.cpu_s": 0.0}, *inside,
            {"t": 20.0, key: 10 ** 6, "process.cpu_s": 99.0}, {"t": 21.0, "error": "timed out"}]


def test_deliveries_are_the_successful_deliver_requests_of_the_runs_transport(make_run):
    run = make_run("ws", {"transport": "websocket"}, requests=[
        ("deliver websocket", 3.0, True), ("deliver websocket", 500.0, False), ("publish", 1.0, True),
        ("deliver sse", 7.0, True), ("deliver websocket", 4.0, True)])
    assert sorted(analysis.deliveries(run)) == [3.0, 4.0]
    with pytest.raises(ValueError, match="delivered no message"):
        analysis.deliveries(make_run("none", {"transport": "sse"}, requests=[("publish", 1.0, True)]))


def test_order_failures_and_requests_per_delivery_come_from_the_summary():
    run = {"summary": {"by_name": {
        "order long-poll": {"requests": 40, "failures": 2}, "poll long-poll": {"requests": 30, "failures": 0},
        "deliver long-poll": {"requests": 20, "failures": 1}, "replay long-poll": {"requests": 5, "failures": 0},
        "ramp long-poll": {"requests": 5, "failures": 0}, "publish": {"requests": 99, "failures": 3}}}}
    assert analysis.order_failures(run) == 2
    assert analysis.requests_per_delivery(run) == 30 / 30


def test_cpu_per_delivery_counts_the_steady_window_and_subtracts_the_publisher_alone(make_run):
    run = make_run("ws", {"transport": "websocket"}, samples={"samples": cpu_samples(100, 0.01)}, notes=WINDOW)
    assert analysis.delivery_rate(run) == pytest.approx((100, 0.01))
    assert analysis.cpu_us_per_delivery(run) == pytest.approx(100)
    assert analysis.cpu_us_per_delivery(run, baseline_cpu_per_s=0.004) == pytest.approx(60)
    short = make_run("short", {"transport": "websocket"}, samples={"samples": cpu_samples(1, 1)[:2]}, notes=WINDOW)
    with pytest.raises(ValueError, match="fewer than 2"):
        analysis.delivery_rate(short)


def test_wire_bytes_add_both_proxies_both_ways_per_delivery(make_run):
    proxy = [{"t": 10.0, "bytes_up": 0, "bytes_down": 0}, {"t": 12.0, "bytes_up": 200, "bytes_down": 600}]
    run = make_run("lp", {"transport": "long-poll"}, notes=WINDOW, samples={
        "samples": cpu_samples(50, 0.01, key="deliveries.long_poll"), "proxy-http": proxy,
        "proxy-ws": [{"t": 10.0, "bytes_up": 0, "bytes_down": 0}, {"t": 12.0, "bytes_up": 0, "bytes_down": 200}]})
    assert analysis.wire_bytes_per_delivery(run) == pytest.approx((100 + 300 + 100) / 50)


def test_params_the_figures_need_fall_back_for_older_result_sets():
    assert analysis.poll_interval_s({"params": {"interval": 0.25}}) == 0.25
    assert analysis.poll_interval_s({"params": {}}) == analysis.DEFAULT_POLL_INTERVAL_S == 1.0
    assert analysis.message_bytes({"params": {"message_bytes": 400}}) == 400
    assert analysis.message_bytes({"params": {}}) == analysis.DEFAULT_MESSAGE_BYTES == 100


def test_memory_per_client_is_the_growth_at_the_first_peak_over_the_clients_held(make_run):
    mib = 2 ** 20
    samples = [{"t": 0, "ws_open": 0, "process.rss_bytes": 10 * mib},
               {"t": 1, "ws_open": 100, "process.rss_bytes": 11 * mib},
               {"t": 2, "ws_open": 200, "process.rss_bytes": 12 * mib},
               {"t": 3, "ws_open": 200, "process.rss_bytes": 30 * mib}]     # later growth is not the clients'
    held = analysis.memory_per_client(make_run("cap", {"transport": "websocket"}, samples={"samples": samples}))
    assert held["held"] == 200 and held["kb_per_client"] == pytest.approx(2 * 1024 / 200)
    assert held["ramp_clients"] == [0, 100, 200] and held["ramp_mib"] == [10, 11, 12] and held["idle_mib"] == 10


def latency_run(make_run, transport, rep, median_ms, cpu_per_s, deliveries_per_s=100, rate=10):
    key = "deliveries." + transport.replace("-", "_")
    return make_run(f"{transport}-r{rate}", {"transport": transport, "rate": rate}, rep,
                    requests=[(f"deliver {transport}", ms, True) for ms in (median_ms / 2, median_ms, 10 * median_ms)],
                    samples={"samples": cpu_samples(deliveries_per_s, cpu_per_s, key)}, notes=WINDOW,
                    summary={"by_name": {f"order {transport}": {"requests": 3, "failures": 0}}})


def test_latency_rows_hold_one_value_per_repetition_and_pair_ratios_by_repetition(make_run):
    runs = [latency_run(make_run, "none", 1, 1, cpu_per_s=0.004, deliveries_per_s=0),   # rep 2 has no baseline
            latency_run(make_run, "websocket", 1, 3, cpu_per_s=0.005),
            latency_run(make_run, "websocket", 2, 5, cpu_per_s=0.006),
            latency_run(make_run, "long-poll", 2, 9, cpu_per_s=0.030),
            latency_run(make_run, "long-poll", 1, 8, cpu_per_s=0.024),
            latency_run(make_run, "short-poll", 1, 500, cpu_per_s=0.05)]
    rows = analysis.latency_rows(runs)
    assert [row["transport"] for row in rows] == ["short-poll", "long-poll", "websocket"]   # the chapter's, no "none"
    _, long_poll, websocket = rows
    assert [run["repetition"] for run in long_poll["runs"]] == [1, 2]
    assert long_poll["median_ms"] == [8, 9] and websocket["p99_ms"] == [30, 50]
    assert websocket["cpu_us_per_delivery"] == pytest.approx([50, 60])
    # rep 1 subtracts its own baseline (40 µs a delivery), rep 2 the median of the rate's baselines
    assert websocket["delivering_cpu_us_per_delivery"] == pytest.approx([10, 20])
    ratios = analysis.cpu_ratios(rows, 10)
    assert ratios["whole"] == pytest.approx([240 / 50, 300 / 60])
    assert ratios["delivering"] == pytest.approx([200 / 10, 260 / 20])
    assert analysis.cpu_ratios(rows, 50) is None


def test_interval_rows_give_mean_and_worst_latency_per_repetition(make_run):
    runs = [make_run(f"i{rep}", {"transport": "short-poll", "interval": 0.5}, rep,
                     requests=[("deliver short-poll", ms, True) for ms in times])
            for rep, times in ((1, [100, 200, 600]), (2, [300, 500]))]
    [row] = analysis.interval_rows(runs)
    assert row["interval"] == 0.5 and row["mean_ms"] == [300, 400] and row["worst_ms"] == [600, 500]


def row(runs=1, **values):
    """A hand-made analysis row: its values, and runs that say where they were measured."""
    return {**values, "runs": [{"scenario": "latency", "size": "smoke", "repetition": k + 1} for k in range(runs)]}


def test_claims_carry_the_ledger_ids_and_mark_a_noisy_cpu_ratio(tmp_path):
    claims = results.Claims()
    per_rep = dict(deliveries=[1000, 1200], median_ms=[8.31, 8.0], p99_ms=[20, 21], requests_per_delivery=[1.0, 1.0],
                   order_failures=[0, 0], interval_s=[1.0, 1.0])
    analysis.claim_latency(claims, [
        row(2, transport="long-poll", rate=10, cpu_us_per_delivery=[600, 500], delivering_cpu_us_per_delivery=[710, 240],
            **per_rep),
        row(2, transport="websocket", rate=10, cpu_us_per_delivery=[100, 100], delivering_cpu_us_per_delivery=[10, 10],
            **{**per_rep, "requests_per_delivery": [0.0, 0.0]})])
    analysis.claim_interval(claims, [row(interval=0.25, mean_ms=[126.0], worst_ms=[250.0])])
    analysis.claim_wan(claims, [row(transport="sse", rtt_ms=50, rate=10, median_ms=[30.7], wire_bytes=[235.4],
                                    order_failures=[0])])
    analysis.claim_capacity(claims, [row(transport="websocket", held=[10000], kb_per_client=[15.04], order_failures=[0])])
    rows = results.read_claims(claims.write(tmp_path / "claims.csv"))
    by_id = {}
    for claim in rows:
        by_id.setdefault(claim["id"], []).append(claim)
    assert set(by_id) == {"", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6"}
    assert [c["measured"] for c in by_id["1.1"]] == ["126.0"] and by_id["1.1"][0]["article"] == "125"
    assert all(c["match"] == "exact" and c["measured"] == "0" and c["article"] == "0"
               for c in by_id["1.3"] if "lost" in c["claim"])
    assert any(c["claim"].startswith("deliveries checked") and c["measured"] == "2200" for c in by_id[""])
    whole, delivering = by_id["1.5"]
    assert (whole["measured"], whole["low"], whole["high"], whole["runs"], whole["note"]) == ("5.5", "5.0", "6.0", "2", "")
    assert (delivering["low"], delivering["high"]) == ("24", "71")                # quoted as "13x" in the ledger
    assert delivering["note"] == "noisy: 24x-71x over 2 runs" and delivering["article"] == "5x (issue)"
    # the ledger quotes long polling and WebSocket (not SSE), and streams' requests per message as 0
    assert [c["claim"] for c in by_id["1.2"]] == ["long-poll median latency at 10 messages/s",
                                                  "websocket median latency at 10 messages/s"]
    assert [c["measured"] for c in by_id["1.4"]] == ["1.00", "0", "235"]
    assert {c["scenario"] for c in rows} == {"latency"} and {c["size"] for c in rows} == {"smoke"}
    assert [c["measured"] for c in by_id["1.6"]] == ["10000", "15.0"]
    assert math.isclose(float(by_id["1.2"][0]["measured"]), 8.2)      # median of 8.31 and 8.0, one decimal
