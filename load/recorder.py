"""What every locustfile imports: the shared command-line options and a raw record of the run.

Options (Locust's own style: flags, or ``LOCUST_*`` environment variables, shown in the web UI):
``--arrival-rate R`` makes the load open loop with R arrivals a second in total (Poisson), else
it is closed loop; ``--raw-dir DIR`` keeps every request in ``requests-<pid>.csv`` and writes
``process-<pid>.json`` (iterations, how many fell behind pace, Locust's CPU warning, when all users
had spawned and when the run began to stop) at the end.
"""
import csv
import json
import os
import time

from locust import events

from . import pacing

state = {"cpu_warning": False, "writer": None, "file": None}


@events.init_command_line_parser.add_listener
def _add_options(parser):
    parser.add_argument("--arrival-rate", type=float, default=0.0, env_var="LOCUST_ARRIVAL_RATE",
                        help="open loop: arrivals per second over all users (Poisson); 0 = closed loop")
    parser.add_argument("--raw-dir", default="", env_var="LOCUST_RAW_DIR",
                        help="folder for the raw per-request CSV and the per-process report")


def rate_per_user(environment) -> float:
    """Open loop: each user's share of ``--arrival-rate``; 0 for closed loop."""
    options = environment.parsed_options
    if options and options.arrival_rate > 0:
        return options.arrival_rate / max(1, options.num_users)
    return 0.0


class Paced:
    """Mixin for a Locust User: open or closed loop as the options say."""
    def on_start(self):
        rate = rate_per_user(self.environment)
        self._wait = pacing.open_loop(rate) if rate else pacing.closed_loop()
        if rate:
            # users spawned together must not all arrive at once; self.wait() (not a plain sleep)
            # lets Locust stop a user still waiting for its first arrival at the end of the run
            self._wait, open_loop = (lambda user: pacing.first_arrival_delay(rate)), self._wait
            self.wait()
            self._wait, self._due = open_loop, time.monotonic()

    def wait_time(self):
        return self._wait(self)


@events.init.add_listener
def _open_raw_log(environment, **_):
    raw_dir = environment.parsed_options.raw_dir if environment.parsed_options else ""
    if not raw_dir:
        return
    os.makedirs(raw_dir, exist_ok=True)
    state["raw_dir"] = raw_dir
    state["file"] = open(os.path.join(raw_dir, f"requests-{os.getpid()}.csv"), "w", newline="")
    state["writer"] = csv.writer(state["file"])
    state["writer"].writerow(["start_time", "name", "response_time_ms", "ok", "response_length"])


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception, start_time=None, **_):
    if state["writer"] is not None:
        state["writer"].writerow([f"{start_time or 0:.6f}", name, f"{response_time:.3f}",
                                  int(exception is None), response_length or 0])


@events.spawning_complete.add_listener
def _spawning_complete(**_):
    pacing.spawning["complete"] = True   # fired in every worker too, once the master has spawned all users
    state.setdefault("spawned_at", time.time())


@events.test_stopping.add_listener
def _test_stopping(**_):
    state.setdefault("stopping_at", time.time())


@events.cpu_warning.add_listener
def _cpu_warning(**_):
    state["cpu_warning"] = True


@events.quitting.add_listener
def _write_report(environment, **_):
    if state.get("file") is None:
        return
    state["file"].close()
    state["file"] = state["writer"] = None
    report = dict(pacing.counts, pid=os.getpid(), cpu_warning=state["cpu_warning"],
                  spawned_at=state.get("spawned_at"), stopping_at=state.get("stopping_at"))
    with open(os.path.join(state["raw_dir"], f"process-{os.getpid()}.json"), "w") as out:
        json.dump(report, out)
