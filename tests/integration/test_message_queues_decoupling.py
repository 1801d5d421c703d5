"""Section 2, decoupling: orders and inventory as processes, inventory SIGKILLed.

- direct: inventory down means a fast 503 and nothing stored;
- queued (outbox, then the broker): orders are confirmed while inventory is dead, and once it is
  back every confirmed order is deducted exactly once or cancelled (out of stock), the stock never
  below zero, on RabbitMQ and on Redis; an inventory killed after deciding, before its ack, gets
  the event again and changes nothing the second time (the raw deliveries show the repeat).
"""
import json
import sys
import time
import urllib.request
import uuid

import pytest

from load.harness import Service, get_json, http_ready, log_ready, wait_for
from load.servers import free_port

REDIS_VISIBILITY_S = 2


class Shop:
    """An inventory and an order service of one wiring, their data in a temp folder, own queues."""

    def __init__(self, folder, broker_url: str = "", stock: str = ""):
        self.folder = folder
        self.env = {"DATA_DIR": str(folder / "data"), "BROKER_URL": broker_url, "INITIAL_STOCK": stock,
                    "QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
                    "BROKER_VISIBILITY_TIMEOUT": str(REDIS_VISIBILITY_S)}
        self.inventory_port = free_port()
        self.inventory_url = f"http://127.0.0.1:{self.inventory_port}"
        self.services: list[Service] = []
        self.lives = 0

    def start_inventory(self, *args: str) -> Service:
        self.lives += 1
        name = f"inventory-{self.lives}"
        log = self.folder / f"{name}.log"
        serving = http_ready(f"{self.inventory_url}/health")
        consuming = log_ready(log, "worker ready")   # printed by the consumer thread, maybe before HTTP listens
        ready = (lambda: consuming() and serving()) if "--consume" in args else serving
        service = Service(name, [sys.executable, "-m", "demos.message_queues.inventory",
                                 "--port", str(self.inventory_port), *args], log_path=log, ready=ready, env=self.env)
        self.services.append(service)
        return service.start()

    def start_orders(self, wiring: str) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        service = Service(f"orders-{wiring}", [sys.executable, "-m", "demos.message_queues.orders", "--wiring", wiring,
                                               "--port", str(port), "--inventory-url", self.inventory_url],
                          log_path=self.folder / f"orders-{wiring}.log", ready=http_ready(f"{url}/health"),
                          env=self.env)
        self.services.append(service)
        service.start()
        return url

    def stop(self):
        for service in reversed(self.services):
            service.stop()


@pytest.fixture
def shop(tmp_path):
    made = []

    def make(broker_url: str = "", stock: str = "") -> Shop:
        made.append(Shop(tmp_path / f"shop-{len(made)}", broker_url, stock))
        return made[-1]
    yield make
    for each in made:
        each.stop()


@pytest.fixture(params=["rabbitmq", "redis"])
def real_broker(request):
    return request.getfixturevalue(f"{request.param}_url")


def test_direct_orders_fail_fast_while_inventory_is_dead_and_store_nothing(shop, post):
    running = shop()
    inventory = running.start_inventory()
    url = running.start_orders("direct")
    assert post(f"{url}/orders", {"product": "apple", "quantity": 1}) == (201, {"id": 1, "status": "deducted"})
    inventory.kill()
    started = time.monotonic()
    status, answer = post(f"{url}/orders", {"product": "apple", "quantity": 1})
    assert status == 503 and "inventory not reachable" in answer["error"]
    assert time.monotonic() - started < 5            # refused at once, never the client's timeout
    assert get_json(f"{url}/stats")["orders"] == {"deducted": 1}


@pytest.mark.timeout(90)
def test_queued_orders_are_confirmed_while_inventory_is_dead_and_each_decided_once(shop, real_broker, post):
    running = shop(real_broker, stock="pear=3")
    inventory = running.start_inventory("--consume")
    url = running.start_orders("queued")
    assert post(f"{url}/orders", {"product": "apple", "quantity": 2}) == (201, {"id": 1, "status": "confirmed"})
    wait_for(lambda: get_json(f"{url}/orders/1")["status"] == "deducted", 15, "order 1 deducted")
    inventory.kill()                                   # SIGKILL
    answers = [post(f"{url}/orders", {"product": product, "quantity": 1})
               for product in ("pear", "apple", "pear", "pear", "pear", "pear")]
    assert [status for status, _ in answers] == [201] * 6      # confirmed with inventory dead
    running.start_inventory("--consume")
    stats = wait_for(lambda: (s := get_json(f"{url}/stats"))["orders"].get("confirmed", 0) == 0 and s, 20,
                     f"every order decided (logs in {running.folder})")
    assert stats["orders"] == {"deducted": 5, "cancelled": 2} and stats["outbox_pending"] == 0
    audit = get_json(f"{running.inventory_url}/audit")
    assert audit["outcomes"] == {"deducted": 5, "cancelled": 2}      # confirmed 7 = deducted 5 + cancelled 2
    assert audit["stock"]["pear"] == 0 and audit["deducted_units"] == {"apple": 3, "pear": 3}
    assert audit["stock"]["apple"] == 1_000_000 - 3


@pytest.mark.timeout(60)
def test_an_event_delivered_again_after_a_kill_before_the_ack_changes_nothing(shop, real_broker, post):
    running = shop(real_broker, stock="plum=5")
    doomed = running.start_inventory("--consume", "--hold-before-ack", "60")
    url = running.start_orders("queued")
    assert post(f"{url}/orders", {"product": "plum", "quantity": 4})[0] == 201
    wait_for(lambda: "decided 1" in doomed.log_path.read_text(), 15, "inventory to decide order 1")
    doomed.kill()                                      # decided and committed, not acknowledged
    running.start_inventory("--consume")
    wait_for(lambda: get_json(f"{url}/orders/1")["status"] == "deducted", 10 + REDIS_VISIBILITY_S, "order 1 deducted")
    audit = get_json(f"{running.inventory_url}/audit")
    assert audit["deliveries"] == 2 and audit["redelivered"] == 1    # raw: the repeat is visible
    assert audit["stock"]["plum"] == 1 and audit["outcomes"] == {"deducted": 1}   # effective: once


BAD_ORDERS = [
    b"{not json", b"[]", b'"apple"', b"\xff\xfe", b"[" * 200 + b"]" * 200,
    {"product": "apple"}, {"quantity": 1}, {"product": "banana", "quantity": 1},
    {"product": "apple", "quantity": -1}, {"product": "apple", "quantity": 0}, {"product": "apple", "quantity": 101},
    {"product": "apple", "quantity": 1.5}, {"product": "apple", "quantity": True}, {"product": "apple", "quantity": "2"},
    {"product": "apple\n", "quantity": 1}, {"product": "\ud800", "quantity": 1}, {"product": ["apple"], "quantity": 1},
]


@pytest.mark.parametrize("wiring", ["direct", "queued"])
def test_bad_orders_get_a_400_with_a_reason_and_change_nothing(shop, wiring, post):
    running = shop(stock="pear=3")
    running.start_inventory(*(["--consume"] if wiring == "queued" else []))
    url = running.start_orders(wiring)
    for body in BAD_ORDERS:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, answer = post(f"{url}/orders", raw)
        assert status == 400 and answer["error"], body
        status, answer = post(f"{running.inventory_url}/deduct", {**body, "key": "direct:1"}
                              if isinstance(body, dict) else raw)
        assert status == 400 and answer["error"], body
    assert post(f"{url}/orders", b"x" * 5000)[0] == 413
    assert get_json(f"{url}/stats") == {"orders": {}, "outbox_pending": 0}
    audit = get_json(f"{running.inventory_url}/audit")
    assert audit["deliveries"] == 0 and audit["stock"]["pear"] == 3
    assert urllib.request.urlopen(f"{url}/health", timeout=5).status == 200   # still serving
