"""Chapter 5's analysis on hand-made inputs."""
import math

from load.rest_vs_messaging import analysis


def row(start, ms, ok=True, name="restock p10"):
    return {"start_time": start, "response_time_ms": ms, "ok": ok, "name": name}


def test_latency_and_last_email_split_by_subscriber_count():
    rows = [row(0, 10, name="restock p1"), row(1, 30, name="restock p1"), row(2, 20, name="restock p1"),
            row(0, 500), row(1, 900, ok=False)]
    assert analysis.latency_by_count(rows) == {1: 20, 10: 500}
    timeline = [{"product": "p100", "requested_at": 1.0, "last_email_at": 3.5},
                {"product": "p100", "requested_at": 2.0, "last_email_at": None}]
    assert analysis.last_email_by_count(timeline) == {100: 2500.0}


def test_per_second_success_and_latency_relative_to_the_fault():
    rows = [row(10.1, 5), row(10.5, 7, ok=False), row(11.2, 9), row(9.9, 3)]
    series = analysis.per_second(rows, origin=10.0)
    assert [(s["t"], s["requests"], s["success"], s["median_ms"]) for s in series] == [
        (-1.0, 1, 1.0, 3), (0.0, 2, 0.5, 5), (1.0, 1, 1.0, 9)]
    assert analysis.during(rows, 10.0, 11.0) == {"requests": 2, "success": 0.5, "median_ms": 5}
    assert math.isnan(analysis.during(rows, 50, 60)["success"])


def test_drain_and_rates():
    emails = [("k1", True, 5.0), ("k2", False, 9.0), ("k3", True, 7.5)]
    assert analysis.drain_s(emails, ready_at=6.0) == 1.5
    assert analysis.drain_s(emails, ready_at=8.0) == 0.0
    assert analysis.rate([1.0, 2.0, 3.0]) == 1.0 and analysis.rate([1.0]) == 0.0


def test_claims_carry_the_ledger_ids():
    from load.results import Claims
    sweeps = {"rest": [{"latency_ms": {1: 10, 100: 1000}, "last_email_ms": {100: 990}}],
              "events": [{"latency_ms": {1: 3, 100: 4}, "last_email_ms": {100: 800}}]}
    outages = {"rest": [{"during": {"success": 0.1}, "books": {"missing": 0, "orphans": 2}, "drain_s": 0}],
               "events": [{"during": {"success": 1.0}, "books": {"missing": 0, "orphans": 0}, "drain_s": 2.5}]}
    claims = analysis.add_claims(Claims(), sweeps, outages, {"rest": [{"updates_per_s": 1.5}]},
                                 [{"missed": 0, "received": 50}], "default")
    ids = [r["id"] for r in claims.rows]
    assert {"5.1", "5.2", "5.3", "5.4"} <= set(ids)
    assert [r["measured"] for r in claims.rows if r["id"] == "5.1"] == ["1000", "4"]


def test_only_email_outages_are_compared():
    runs = [{"params": {"wiring": "rest"}}, {"params": {"wiring": "rest", "target": "email"}},
            {"params": {"wiring": "rest", "target": "notifier"}}]
    assert analysis.email_outages(runs) == runs[:2]


def test_the_outbox_backlog_and_the_broker_claims():
    from load.results import Claims
    rows = [(10.0, 10.1), (11.0, 14.0), (12.0, None)]
    held = {round(s["t"], 2): s["held"] for s in analysis.outbox_backlog(rows, origin=10.0, step_s=1.0)}
    assert held[0.0] == 1 and held[1.0] == 1 and held[2.0] == 2 and held[4.0] == 1
    one = {"during": {"success": 1.0}, "books": {"missing": 0, "repeats": 0}, "longest_wait_s": 3.0, "drain_s": 1.5,
           "ordering": {"out_of_order": 4, "view_wrong": 0, "missed": 0, "after_consumer_kill": {"out_of_order": 3}},
           "broker": "redis", "faults": ["broker"]}
    claims = Claims()
    analysis.add_broker_claims(claims, {"redis-broker-down": [one], "redis-consumer-down": [{**one, "faults": ["consumer"]}],
                                        "redis-broker-and-consumer-down": [{**one, "faults": ["broker", "consumer"]}]},
                               "default")
    assert sum(r["id"] == "5.5" for r in claims.rows) == 12
    assert {r["match"] for r in claims.rows if "missing" in r["claim"]} == {"range"}   # Redis: counted
    assert [r["measured"] for r in claims.rows if r["id"] == "5.4"] == ["4", "0", "4", "0", "4", "3", "0"]


def test_the_drain_counts_the_restocks_made_while_the_broker_was_away():
    timeline = [{"created_at": 1.0, "last_email_at": 1.2}, {"created_at": 5.0, "last_email_at": 12.5},
                {"created_at": 11.0, "last_email_at": 20.0}]
    assert analysis.backlog_drain_s(timeline, killed_at=4.0, ready_at=10.0) == 2.5
    assert analysis.backlog_drain_s(timeline[:1], killed_at=4.0, ready_at=10.0) == 0.0
