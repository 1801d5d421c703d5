"""A flash crowd at one coupon batch: every arrival is a new user claiming a coupon.

Open loop with ``--arrival-rate R`` (Poisson, load/recorder.py), closed loop without. Each user:
- claims once (``claim``); a refusal (409 exhausted, 410 expired) is an answer, not a failure;
- with ``--double-click P`` sends its first claim twice at the same moment (two clicks);
- with ``--retry P`` acts as if the answer timed out and sends the same claim again
  (an idempotent retry must give the same coupon, never a second one);
- on a real failure (timeout, 503, connection refused) retries up to ``--retries`` times.
Every coupon a user was given is written to ``<raw-dir>/successes-<pid>.csv`` (user, code,
status), so the audit can check that every success has its row.
By hand, with a strategy running on port 8000 and a batch created:
    locust -f load/coupon_system/locustfile.py --host http://127.0.0.1:8000 --batch-id 1 --arrival-rate 200
"""
import csv
import itertools
import os
import random

import gevent
from locust import FastHttpUser, events, task

from load.recorder import Paced

ANSWERS = (200, 201, 409, 410)   # a coupon, or a clear refusal
_ids = itertools.count(1)
_successes = {"writer": None, "file": None}


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--batch-id", type=int, default=1, help="the batch the crowd claims from")
    parser.add_argument("--double-click", type=float, default=0.0, help="share of users who click twice at once")
    parser.add_argument("--retry", type=float, default=0.0, help="share of users who resend after a 'timeout'")
    parser.add_argument("--retries", type=int, default=3, help="retries after a real failure")


@events.init.add_listener
def _open_successes(environment, **_):
    options = environment.parsed_options
    if options and options.raw_dir:
        os.makedirs(options.raw_dir, exist_ok=True)
        _successes["file"] = open(os.path.join(options.raw_dir, f"successes-{os.getpid()}.csv"), "w", newline="")
        _successes["writer"] = csv.writer(_successes["file"])
        _successes["writer"].writerow(["user", "code", "status"])


@events.quitting.add_listener
def _close_successes(**_):
    if _successes["file"] is not None:
        _successes["file"].close()
        _successes["file"] = _successes["writer"] = None


class FlashCrowd(Paced, FastHttpUser):
    network_timeout = 10.0       # seconds before a claim counts as timed out (and is retried)

    def claim(self, user: str):
        options = self.environment.parsed_options
        with self.client.post(f"/batches/{options.batch_id}/claim", json={"user": user}, name="claim",
                              catch_response=True) as response:
            if response.status_code in ANSWERS:
                response.success()
                if response.status_code in (200, 201) and _successes["writer"] is not None:
                    _successes["writer"].writerow([user, response.json()["code"], response.status_code])
                return True
            response.failure(f"{response.status_code}: {response.text[:200] if response.text else response.error}")
            return False

    @task
    def arrive(self):
        options = self.environment.parsed_options
        user = f"u{os.getpid()}-{next(_ids)}"
        if random.random() < options.double_click:
            clicks = [gevent.spawn(self.claim, user) for _ in range(2)]
            gevent.joinall(clicks)
            answered = any(click.value for click in clicks)
        else:
            answered = self.claim(user)
        for _ in range(options.retries if not answered else 0):
            gevent.sleep(0.2)
            if self.claim(user):
                break
        if answered and random.random() < options.retry:
            self.claim(user)    # "the answer timed out": the same claim again
