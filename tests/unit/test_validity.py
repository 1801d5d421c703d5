"""When the harness marks a run invalid: the load generator, not the system, was the limit."""
from load.harness import LocustResult, validity


def result(iterations=1000, behind=0, utilisation=0.3, cpu_warning=False, requests=500) -> LocustResult:
    return LocustResult(command=[], returncode=0, wall_s=10.0,
                        loadgen={"processes": 1, "cpu_seconds": 3.0, "max_process_utilisation": utilisation,
                                 "cpu_warning": cpu_warning},
                        pacing={"iterations": iterations, "behind": behind},
                        summary={"requests": requests}, services_cpu_s={})


def test_a_run_on_pace_with_cores_to_spare_is_valid():
    assert validity(result()) == []


def test_more_than_one_percent_of_arrivals_behind_makes_a_run_invalid():
    assert validity(result(behind=10)) == []
    assert "11 of 1000 iterations fell behind their pace" in validity(result(behind=11))[0]


def test_a_single_late_arrival_in_a_short_run_is_chance_not_a_full_load_generator():
    assert validity(result(iterations=97, behind=1)) == []
    assert validity(result(iterations=97, behind=2))


def test_a_full_core_or_no_request_makes_a_run_invalid():
    assert "full core" in validity(result(utilisation=0.95))[0]
    assert "full core" in validity(result(cpu_warning=True))[0]
    assert "no request" in validity(result(requests=0))[0]
    assert validity(None) == ["no Locust run"]


def test_a_declared_overload_is_the_finding_but_a_full_load_generator_core_never_is():
    assert validity(result(behind=300), {"overload": "ten times what the writer takes"}) == []
    assert "full core" in validity(result(behind=300, utilisation=0.95), {"overload": "on purpose"})[0]
    assert validity(result(behind=300), {"failures": "an outage"})   # failures do not excuse a late load


def test_a_planned_fault_that_never_fired_makes_the_run_invalid():
    from types import SimpleNamespace

    from load.faults import Fault
    from load.harness import faults_missed
    fired, missed = Fault(SimpleNamespace(name="rabbitmq"), 1.5, 2), Fault(SimpleNamespace(name="consumer"), 3, 1)
    fired.record["killed_at"] = 1.0
    assert faults_missed({}) == [] and faults_missed({"faults": [fired.record]}) == []
    [reason] = faults_missed({"faults": [fired.record, missed.record]})
    assert "SIGKILL of consumer 3 s in never happened" in reason
