"""Restocks against chapter 5's inventory: the restocks of a Locust process take ``--products`` in
turn (so every product gets its share even in a short run).

The request is named after the product (``restock p100``), so latency splits by subscriber count.
Closed loop by default, ``--arrival-rate R`` for open-loop arrivals (see load/recorder.py);
``--max-restocks N`` stops each user after N restocks (so a fast wiring cannot pile up more e-mails
than a run can send). By hand, with a stack running (python -m load.rest_vs_messaging.stack):
    locust -f load/rest_vs_messaging/locustfile.py --host http://127.0.0.1:PORT --products p1
"""
import itertools
import threading

from locust import FastHttpUser, events, task
from locust.exception import StopUser

from load.recorder import Paced


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--products", default="p1", env_var="LOCUST_PRODUCTS", help="comma-separated product ids")
    parser.add_argument("--max-restocks", type=int, default=0, env_var="LOCUST_MAX_RESTOCKS",
                        help="each user stops after this many restocks (0: no limit)")


_turns = {"cycle": None, "lock": threading.Lock()}


def next_product(products: list[str]) -> str:
    with _turns["lock"]:
        if _turns["cycle"] is None:
            _turns["cycle"] = itertools.cycle(products)
        return next(_turns["cycle"])


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
        product = next_product(self.products)
        self.client.post(f"/products/{product}/stock", json={"quantity": 1}, name=f"restock {product}")
