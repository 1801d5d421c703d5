"""Chapter 6's analysis on small hand-made runs: the gap in its steps, what the probe saw, the
series the notebook plots and the claims it writes."""
import math

import pytest

from load import results
from load.high_availability import analysis

T0 = 1000.0


def probe_rows(spec):
    """[(sent offset, ok, balancer)] -> probe.csv rows (each answered 5 ms later)."""
    return [{"sent_at": f"{T0 + s:.3f}", "done_at": f"{T0 + s + 0.005:.3f}", "ok": int(ok), "status": 200 if ok else "",
             "balancer": balancer if ok else "", "backend": "backend-1" if ok else "", "error": "" if ok else "refused"}
            for s, ok, balancer in spec]


def write(folder, name, header, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))


@pytest.fixture
def nginx_kill(make_run):
    """lb1's nginx killed at +1.0 s; checks fail at 1.5 and 2.5 (fall 2); lb2 master at 3.2;
    the probe fails from 1.0 to 3.2 and lb2 answers from 3.3."""
    spec = [(t / 10, True, "lb1") for t in range(10)] + [(1.0 + t / 10, False, "") for t in range(23)] \
        + [(3.3 + t / 10, True, "lb2") for t in range(5)]
    run = make_run("nginx-kill-one-second", dict(fault="nginx-kill", setting="one-second", style="priority", preempt=True, fall=2),
                   files={"probe.csv": probe_rows(spec)}, notes={"faults": [{"killed_at": T0 + 1.0}]},
                   scenario="failover")
    write(run["dir"] / "ha" / "lb1", "checks.csv", "t,result", [(T0 + 0.5, "ok"), (T0 + 1.5, "fail"), (T0 + 2.5, "fail")])
    write(run["dir"] / "ha" / "lb2", "events.csv", "t,state,priority", [(T0 - 5, "BACKUP", 100), (T0 + 3.2, "MASTER", 100)])
    write(run["dir"], "holders.csv", "t,lb1,lb2", [(T0 + t / 10, int(t < 32), int(t >= 31)) for t in range(40)])
    return run


def test_the_gap_in_its_steps(nginx_kill):
    steps = analysis.failover_steps(nginx_kill)
    assert steps["detection_s"] == pytest.approx(1.5)        # the second failed check in a row
    assert steps["election_s"] == pytest.approx(0.7)
    assert steps["serve_s"] == pytest.approx(0.105)          # the first lb2 answer ends at 3.305
    assert steps["total_s"] == pytest.approx(2.305)
    assert steps["failed"] == 23 and steps["outage_s"] == pytest.approx(2.3)
    assert steps["two_holders_s"] == pytest.approx(0.1)      # one sample with both


def test_missed_adverts_detect_when_the_backup_becomes_master(nginx_kill):
    nginx_kill["params"]["fault"] = "keepalived-sigkill"
    steps = analysis.failover_steps(nginx_kill)
    assert steps["detection_s"] == pytest.approx(2.2) and steps["election_s"] == 0


def test_a_clean_stop_is_detected_at_once(nginx_kill):
    nginx_kill["params"]["fault"] = "keepalived-stop"
    assert analysis.failover_steps(nginx_kill)["detection_s"] == 0


def test_no_new_master_leaves_the_later_steps_empty(nginx_kill):
    write(nginx_kill["dir"] / "ha" / "lb2", "events.csv", "t,state,priority", [(T0 - 5, "BACKUP", 100)])
    steps = analysis.failover_steps(nginx_kill)
    assert math.isnan(steps["election_s"]) and math.isnan(steps["total_s"])


def test_detection_needs_fall_failures_in_a_row():
    checks = [(1.0, False), (2.0, True), (3.0, False), (4.0, False), (5.0, False)]
    assert analysis.detection_time(checks, 0.5, 2) == 4.0
    assert analysis.detection_time(checks, 0.5, 3) == 5.0
    assert analysis.detection_time(checks, 0.5, 4) is None


def test_outage_without_failures_is_zero():
    probe = [{"sent_at": t, "ok": True} for t in range(5)]
    assert analysis.outage(probe, 1) == {"failed": 0, "outage_s": 0.0}


def test_per_second_counts_requests_and_failures():
    seconds, requests, failures = analysis.per_second([(10.1, True), (10.9, False), (12.5, True)], 10.0)
    assert (seconds, requests, failures) == ([0, 1, 2], [2, 0, 1], [1, 0, 0])


def test_access_log_counts_retries(make_run):
    run = make_run("get-retry", {"variant": "get-retry"})
    (run["dir"] / "ha" / "lb1").mkdir(parents=True)
    (run["dir"] / "ha" / "lb1" / "access.tsv").write_text(
        "1000.100\t200\tGET\t127.0.0.1:8001\t200\t0.201\n"
        "1000.200\t200\tGET\t127.0.0.1:8001, 127.0.0.1:8002\t502, 200\t0.250\n"
        "1000.300\t502\tGET\t127.0.0.1:8001\t502\t0.100\n")
    assert analysis.retried(run) == 1
    assert analysis.read_access(run)[1]["upstreams"] == ["127.0.0.1:8001", "127.0.0.1:8002"]


def test_claims_quote_the_ledger_rows(nginx_kill, make_run):
    claims = results.Claims()
    backend = make_run("get-retry", {"variant": "get-retry"}, scenario="backend-death",
                       summary={"requests": 100, "failures": 0}, files={"probe.csv": probe_rows([(0, True, "lb1")])})
    analysis.claim_backend(claims, analysis.backend_rows([backend]))
    analysis.claim_failover(claims, analysis.failover_rows([nginx_kill]))
    by_id = {}
    for row in claims.rows:
        by_id.setdefault(row["id"], []).append(row)
    assert [row["measured"] for row in by_id["6.1"]] == ["0", "0"] and by_id["6.1"][0]["match"] == "exact"
    assert "6.2" not in by_id                 # one-second is not a ledger setting
    nginx_kill["params"]["setting"] = "article"
    claims = results.Claims()
    analysis.claim_failover(claims, analysis.failover_rows([nginx_kill]))
    ledger = [row for row in claims.rows if row["id"] == "6.2"]
    assert [row["claim"] for row in ledger] == ["failed check to new master, nginx-kill, article",
                                                "fault to first request served by the backup, nginx-kill, article"]
    assert ledger[0]["measured"] == "0.70" and ledger[0]["article"] == "4.0"


def test_the_masters_return(nginx_kill):
    """nginx back at +3.25 s; lb1 master again at +3.6 s, no probe request failing after +3.25 s."""
    nginx_kill["params"]["fault"] = "master-return"
    nginx_kill["notes"]["faults"][0]["ready_at"] = T0 + 3.25
    write(nginx_kill["dir"] / "ha" / "lb1", "events.csv", "t,state,priority",
          [(T0 - 5, "MASTER", 101), (T0 + 3.2, "BACKUP", 96), (T0 + 3.6, "MASTER", 101)])
    steps = analysis.failover_steps(nginx_kill)
    assert steps["return_s"] == pytest.approx(0.35) and steps["return_failed"] == 0
    nginx_kill["notes"]["faults"][0]["ready_at"] = T0 + 3.0
    assert analysis.failover_steps(nginx_kill)["return_failed"] == 3     # sent at +3.0, +3.1, +3.2
    write(nginx_kill["dir"] / "ha" / "lb1", "events.csv", "t,state,priority", [(T0 - 5, "MASTER", 101)])
    assert math.isnan(analysis.failover_steps(nginx_kill)["return_s"])      # nopreempt: it stays backup
    write(nginx_kill["dir"] / "ha" / "lb1", "events.csv", "t,state,priority",
          [(T0 - 5, "MASTER", 101), (T0 + 9.0, "MASTER", 101)])          # after the probe's last request
    assert math.isnan(analysis.failover_steps(nginx_kill)["return_s"])      # the run's end, not a return


def test_no_return_for_other_faults(nginx_kill):
    steps = analysis.failover_steps(nginx_kill)
    assert math.isnan(steps["return_s"]) and math.isnan(steps["return_failed"])
