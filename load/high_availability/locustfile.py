"""Steady traffic through the balancers (closed loop, each user paced at ``--user-rate`` requests a
second): ``GET /`` by default, ``--method post`` for ``POST /order``; ``--delay-ms`` makes the
backend hold each answer, so requests are in flight when a backend dies. Every request is a new
connection (``Connection: close``), as a new visitor's is, so a request fails only when the
balancer or the address really does not answer, not because a kept-alive connection went stale.

By hand, with the loopback demo running (python -m demos.high_availability.cluster --loopback):
    locust -f load/high_availability/locustfile.py --host http://127.0.0.1:8080
"""
from locust import FastHttpUser, constant_pacing, events, task

import load.recorder  # noqa: F401  (the raw record of every request, and --raw-dir)


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--user-rate", type=float, default=10.0, env_var="LOCUST_USER_RATE",
                        help="requests a second per user (closed loop, paced)")
    parser.add_argument("--method", choices=("get", "post"), default="get", env_var="LOCUST_METHOD")
    parser.add_argument("--delay-ms", type=int, default=0, env_var="LOCUST_DELAY_MS",
                        help="how long the backend holds each answer")


class Visitor(FastHttpUser):
    connection_timeout = 2.0
    network_timeout = 5.0

    def wait_time(self):
        return self._pace(self)

    def on_start(self):
        options = self.environment.parsed_options
        self._pace = constant_pacing(1.0 / options.user_rate)
        self._method, self._delay = options.method, options.delay_ms

    @task
    def visit(self):
        headers = {"Connection": "close"}
        if self._method == "post":
            self.client.post("/order", json={"item": "book", "delay_ms": self._delay}, headers=headers, name="POST /order")
        else:
            self.client.get(f"/?delay_ms={self._delay}", headers=headers, name="GET /")
