"""Open-loop pacing counts the iterations that could not start on time."""
import random

import pytest

from load import pacing


class FakeUser:
    pass


@pytest.fixture(autouse=True)
def fresh_counts(monkeypatch):
    monkeypatch.setattr(pacing, "counts", {"iterations": 0, "behind": 0, "ramping": 0})
    monkeypatch.setattr(pacing, "spawning", {"complete": True})


def test_a_user_on_time_is_never_behind_and_keeps_its_schedule(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock[0])
    wait = pacing.open_loop(rate_per_user=10, constant=True)
    user = FakeUser()
    waits = []
    for _ in range(5):
        waits.append(wait(user))
        clock[0] += waits[-1] + 0.0   # the task itself took no time
    assert waits == pytest.approx([0.1] * 5)
    assert pacing.counts == {"iterations": 5, "behind": 0, "ramping": 0}


def test_a_task_longer_than_the_gap_is_counted_behind(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock[0])
    wait = pacing.open_loop(rate_per_user=10, constant=True)
    user = FakeUser()
    assert wait(user) == pytest.approx(0.1)   # the next task is due at 0.1
    clock[0] = 0.6                            # it started on time but took 0.5 s
    assert wait(user) == 0.0                  # the one due at 0.2 starts at once, late...
    clock[0] = 0.61                           # ...and quickly done
    assert wait(user) == pytest.approx(0.09)  # a fresh schedule from 0.6, no burst to catch up
    assert pacing.counts == {"iterations": 3, "behind": 1, "ramping": 0}


def test_poisson_gaps_average_to_the_rate(monkeypatch):
    random.seed(7)
    clock = [0.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock[0])
    wait = pacing.open_loop(rate_per_user=5)
    user = FakeUser()
    total = 0.0
    for _ in range(4000):
        gap = wait(user)
        clock[0] += gap
        total += gap
    assert total / 4000 == pytest.approx(0.2, rel=0.05)


def test_late_arrivals_while_users_are_spawning_are_counted_apart(monkeypatch):
    monkeypatch.setattr(pacing, "spawning", {"complete": False})
    clock = [0.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock[0])
    wait = pacing.open_loop(rate_per_user=10, constant=True)
    user = FakeUser()
    wait(user)
    clock[0] = 0.6                 # late while Locust is busy spawning users: not judged
    wait(user)
    assert pacing.counts == {"iterations": 0, "behind": 0, "ramping": 2}
    pacing.spawning["complete"] = True
    clock[0] = 1.2                 # late once every user runs: behind
    wait(user)
    assert pacing.counts == {"iterations": 1, "behind": 1, "ramping": 2}
