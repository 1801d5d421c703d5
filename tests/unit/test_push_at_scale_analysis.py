"""Chapter 2's analysis on small hand-made runs: counters bracketing the pushing window, memory per
connection as a slope, the bare ceiling, the receivers' audit, the extrapolation."""
import json

import pytest

from load.push_at_scale import analysis


def make_run(tmp_path, samples=None, reports=(), bench=None, pacing=None, notes=None, params=None):
    for name, rows in (samples or {}).items():
        (tmp_path / f"samples-{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    for n, report in enumerate(reports):
        (tmp_path / f"receiver-{n + 1}.json").write_text(json.dumps(report))
    if bench:
        (tmp_path / "bench.json").write_text(json.dumps(bench))
    return {"dir": tmp_path, "pacing": pacing or {}, "notes": notes or {"pushing_from": 10.0, "pushing_until": 20.0},
            "params": params or {}, "summary": {}, "repetition": 1, "size": "default"}


def test_rates_come_from_the_samples_around_the_window_even_when_one_in_it_timed_out(tmp_path):
    samples = [{"t": 9.5, "cpu_s": 1.0, "deliveries.topic": 0, "heartbeats": 0},
               {"t": 12.0, "error": "timed out"},
               {"t": 21.5, "cpu_s": 3.4, "deliveries.topic": 100_000, "deliveries.device": 20_000, "heartbeats": 1200}]
    run = make_run(tmp_path, {"g1": samples}, pacing={"spawned_at": 10.0, "stopping_at": 18.0})
    rates = analysis.gateway_rates(run)
    assert rates["deliveries_per_s"] == pytest.approx(120_000 / 8)
    assert rates["us_per_delivery"] == pytest.approx(20.0)
    assert rates["cpu_cores"] == pytest.approx(2.4 / 12) and rates["heartbeats_per_s"] == pytest.approx(100)


def test_two_gateways_add_up(tmp_path):
    one = [{"t": 9, "cpu_s": 0, "deliveries.topic": 0}, {"t": 21, "cpu_s": 1, "deliveries.topic": 50_000}]
    run = make_run(tmp_path, {"g1": one, "g2": one})
    assert analysis.gateway_rates(run)["deliveries_per_s"] == pytest.approx(100_000 / 10)


def test_memory_per_connection_is_the_slope():
    connections = [0, 1000, 2000, 3000]
    rss_mib = [30 + c * 15_000 / 2**20 for c in connections]
    assert analysis.bytes_per_connection(connections, rss_mib) == pytest.approx(15_000)
    assert analysis.bytes_per_connection([0, 500], [10, 10 + 500 * 12_000 / 2**20]) == pytest.approx(12_000)
    with pytest.raises(ValueError):
        analysis.bytes_per_connection([0, 0], [10, 10])


def test_the_bare_ceiling_and_the_audit(tmp_path):
    run = make_run(tmp_path, bench={"g1": {"deliveries": 100_000, "cpu_s": 1.25, "wall_s": 2.0}},
                   reports=[{"received": 10, "duplicates": 0, "skipped": 1, "gaps": 0, "ready": 5, "devices": 5,
                             "live_deliveries": 9, "latency_ms": [1.0, 2.0, 3.0]},
                            {"received": 5, "duplicates": 2, "skipped": 0, "gaps": 1, "ready": 5, "devices": 5,
                             "live_deliveries": 5, "latency_ms": [10.0]}])
    assert analysis.bench(run) == {"per_cpu_s": 80_000, "us_per_delivery": pytest.approx(12.5), "per_wall_s": 50_000}
    counts = analysis.audit(run)
    assert (counts["received"], counts["duplicates"], counts["skipped"], counts["gaps"]) == (15, 2, 1, 1)
    assert analysis.latency_ms(run, 0.5) == 2.0 and analysis.latency_ms(run, 1.0) == 10.0


def test_the_extrapolation_multiplies_our_costs_out():
    rows = {row["what"]: row["amount"] for row in analysis.extrapolate(16_000, 20.0, 50.0, devices=1_000_000,
                                                                        per_minute=600_000, heartbeat_s=100)}
    assert rows["gateway memory for every connection"] == pytest.approx(1_000_000 * 16_000 / 2**30)
    assert rows["CPU for 10,000 deliveries a second"] == pytest.approx(0.2)
    assert rows["CPU for heartbeats every 100 s"] == pytest.approx(0.5)
    assert rows["gateway processes at 20,000 connections each"] == 50


def test_a_heartbeat_costs_the_slope_between_the_intervals():
    rows = [{"heartbeat_s": 1.0, "cpu_cores": [0.30], "heartbeats_per_s": [2000.0]},
            {"heartbeat_s": 4.0, "cpu_cores": [0.15], "heartbeats_per_s": [500.0]}]
    assert analysis.marginal_us_per_heartbeat(rows) == [pytest.approx(100.0)]


def test_the_stages_of_a_topic_message_are_means_over_the_gateways(tmp_path):
    (tmp_path / "gateways.json").write_text(json.dumps({
        "g1": {"topic.messages": 4, "topic.store_to_send_ms": 40, "topic.send_ms": 400},
        "g2": {"topic.messages": 4, "topic.store_to_send_ms": 24, "topic.send_ms": 0}}))
    assert analysis.stages_ms({"dir": tmp_path}) == {"store_to_send_ms": 8.0, "send_ms": 50.0}
