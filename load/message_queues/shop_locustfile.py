"""Orders, messages and pages for sections 2 to 5, open loop (``--arrival-rate``), by hand or from scenarios:

- decoupling: each arrival places one order with the direct wiring (the host) and one with the
  queued wiring (``--queued-host``), named ``/orders direct`` and ``/orders queued``; a 409 (out of
  stock) is an answer, not a failure. One order in four is for a scarce product: pear (direct) or
  plum (queued), so that each wiring runs out of its own.
- flash sale (``--sale``): each arrival buys one; ``/buy accepted`` (201, 202), ``/buy rejected``
  (429, the queue full) and failures (503, or no answer within 2 s) apart.
- news (``--news``): each arrival posts one message to a publisher (section 4).
- logs (``--logs``): each arrival requests a page of the logging application (section 5).

    locust -f load/message_queues/shop_locustfile.py --host http://127.0.0.1:8000 --sale
"""
import random

from locust import FastHttpUser, events, task

from load.recorder import Paced


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--queued-host", default="", help="the queued order service (decoupling)")
    parser.add_argument("--sale", action="store_true", help="buy from a flash sale instead")
    parser.add_argument("--news", action="store_true", help="post messages to a publisher instead (section 4)")
    parser.add_argument("--logs", action="store_true", help="request pages of a logging application (section 5)")


class Shopper(Paced, FastHttpUser):
    network_timeout = connection_timeout = 2.0   # a customer gives up after 2 s

    def order(self, url: str, name: str, product: str) -> None:
        with self.client.post(url, json={"product": product, "quantity": 1}, name=name,
                              catch_response=True) as response:
            if response.status_code in (201, 409):
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    def buy(self) -> None:
        with self.client.post("/buy", json={"product": "apple", "quantity": 1}, name="/buy",
                              catch_response=True) as response:
            if response.status_code in (201, 202, 429):
                response.request_meta["name"] = "/buy rejected" if response.status_code == 429 else "/buy accepted"
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    @task
    def shop(self):
        options = self.environment.parsed_options
        if options.sale:
            self.buy()
            return
        if options.news:
            self.client.post("/messages", json={"text": "hello"}, name="/messages")
            return
        if options.logs:
            self.client.get("/page", name="/page")
            return
        scarce = random.random() < 0.25
        self.order("/orders", "/orders direct", "pear" if scarce else "apple")
        self.order(f"{options.queued_host}/orders", "/orders queued", "plum" if scarce else "apple")
