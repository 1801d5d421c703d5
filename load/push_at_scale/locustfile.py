"""The pusher: pushes at a fixed rate (open loop, ``--arrival-rate``) to a topic, to single devices or
to lists, as an application server calling the push API does. The devices are not Locust users:
they are lean receiver processes (receiver.py), which hold thousands of devices each and check every
frame; Locust measures the push API (``push topic``, ``push device``: the time to a 202) and
its own CPU, so a saturated load generator marks the run invalid.

    locust -f load/push_at_scale/locustfile.py --host http://127.0.0.1:8000 --headless -u 4 -r 4 -t 20s \\
        --arrival-rate 20 --target topic --topic news
"""
import itertools
import random
import time

from locust import FastHttpUser, events, task

import load.recorder  # noqa: F401  (registers --arrival-rate, --raw-dir and keeps the raw record of every request)
from load import pacing
from load.recorder import rate_per_user

BODY = "x" * 100
user_numbers = itertools.count()
PHASE = random.random()


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--target", choices=("topic", "device", "devices"), default="topic")
    parser.add_argument("--topic", default="news", help="the topic pushed to (--target topic)")
    parser.add_argument("--device-prefixes", default="r1-", help="comma-separated receiver prefixes (--target device)")
    parser.add_argument("--devices-each", type=int, default=100, help="devices per prefix")
    parser.add_argument("--list-size", type=int, default=10, help="devices per push (--target devices)")
    parser.add_argument("--urgent", default="true", choices=("true", "false"))


class Pusher(FastHttpUser):
    def on_start(self):
        options = self.environment.parsed_options
        self.options = options
        rate = rate_per_user(self.environment)
        self.pace = pacing.open_loop(rate, constant=True)
        # evenly spaced overall, not only per user: users spawned together would otherwise push in
        # bursts of --users at once (and measure their own queueing, not the system's)
        # (a random phase a process: with several Locust processes each spreads its own users)
        if rate:
            users = max(1, options.num_users)
            time.sleep(((next(user_numbers) + PHASE) % users) / users / rate)
        self._due = time.monotonic()
        prefixes = [p for p in options.device_prefixes.split(",") if p]
        self.devices = [f"{prefix}{n}" for prefix in prefixes for n in range(options.devices_each)]
        self.rng = random.Random()
        self.urgent = options.urgent == "true"

    def wait_time(self):
        return self.pace(self)

    @task
    def push(self):
        target = self.options.target
        if target == "topic":
            body = {"topic": self.options.topic, "body": BODY, "urgent": self.urgent}
        elif target == "device":
            body = {"device": self.rng.choice(self.devices), "body": BODY, "urgent": self.urgent}
        else:
            body = {"devices": self.rng.sample(self.devices, self.options.list_size), "body": BODY}
        with self.client.post("/push", json=body, name=f"push {target}", catch_response=True) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
