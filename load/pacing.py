"""Open-loop arrivals for Locust users, counting every iteration that fell behind its pace.

A closed-loop user waits for each answer before asking again, so a slow server slows the load
and hides its own queueing. For latency questions the load must arrive on its own schedule:
``open_loop(rate)`` gives each user Poisson arrivals (``constant=True``: evenly spaced), and an
iteration that starts later than scheduled (the user was still busy) is counted as behind.
With enough users none falls behind; the harness marks a run invalid when more than 1% do.
Arrivals while the users are still being spawned (``ramping``) are counted apart: connecting a
thousand clients keeps a Locust process busy, and the run is judged on its steady part.
"""
import random
import time


LATE_TOLERANCE_S = 0.010

counts = {"iterations": 0, "behind": 0, "ramping": 0}


spawning = {"complete": False}   # set by load/recorder.py on Locust's spawning_complete event


def ramping() -> bool:
    """True until Locust has spawned every user of the run."""
    return not spawning["complete"]


def open_loop(rate_per_user: float, constant: bool = False):
    """A Locust ``wait_time`` giving ``rate_per_user`` arrivals a second to each user."""
    def wait_time(user) -> float:
        # called when a task ends; the next task is due one gap after the one that just ran was
        now = time.monotonic()
        if ramping():
            counts["ramping"] += 1
        else:
            counts["iterations"] += 1
        gap = 1.0 / rate_per_user if constant else random.expovariate(rate_per_user)
        due = getattr(user, "_due", now) + gap
        if now - due > LATE_TOLERANCE_S:
            counts["behind"] += not ramping()   # it cannot start on time: the user was still busy
            due = now                # start a fresh schedule, don't burst to catch up
        user._due = due
        return max(0.0, due - now)
    return wait_time


def first_arrival_delay(rate_per_user: float, constant: bool = False) -> float:
    """How long a new user waits before its first arrival, so that users spawned together don't
    all fire at once (Locust runs a user's first task as soon as it spawns)."""
    gap = 1.0 / rate_per_user if constant else random.expovariate(rate_per_user)
    return random.uniform(0, gap) if constant else gap


def closed_loop():
    """No wait: each user sends its next request as soon as the previous answer arrives."""
    def wait_time(user) -> float:
        counts["iterations"] += 1
        return 0.0
    return wait_time
