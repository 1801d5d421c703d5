"""Restocks against chapter 5's inventory: each restock picks one of ``--products`` at random.

The request is named after the product (``restock p100``), so latency splits by subscriber count.
Closed loop by default, ``--arrival-rate R`` for open-loop arrivals (see load/recorder.py);
``--max-restocks N`` stops each user after N restocks (so a fast wiring cannot pile up more e-mails
than a run can send). By hand, with a stack running (python -m load.rest_vs_messaging.stack):
    locust -f load/rest_vs_messaging/locustfile.py --host http://127.0.0.1:PORT --products p1
"""
import random

from locust import FastHttpUser, events, task
from locust.exception import StopUser

from load.recorder import Paced


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--products", default="p1", env_var="LOCUST_PRODUCTS", help="comma-separated product ids")
    parser.add_argument("--max-restocks", type=int, default=0, env_var="LOCUST_MAX_RESTOCKS",
                        help="each user stops after this many restocks (0: no limit)")


class Restock(Paced, FastHttpUser):
    def on_start(self):
        self.products = self.environment.parsed_options.products.split(",")
        self.limit, self.done = self.environment.parsed_options.max_restocks, 0
        super().on_start()

    @task
    def restock(self):
        if self.limit and self.done >= self.limit:
            raise StopUser()
        self.done += 1
        product = random.choice(self.products)
        self.client.post(f"/products/{product}/stock", json={"quantity": 1}, name=f"restock {product}")
