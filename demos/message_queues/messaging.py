"""What sections 2 to 5 share about the broker and the shop: one persistent message published to a
named queue within a bound, queues consumed until SIGTERM (surviving a broker restart), and an
order's body checked.

    publisher = Publisher(connect(broker_url))
    publisher.publish("shop.placed", {"order_id": 1})     # BrokerUnavailable within about 1 s
    consume_forever(broker_url, [durable("shop.placed")], handle, stopping)

The registration's Jobs (jobs.py) keeps its own publish, with its circuit breaker; these reuse its
bounds and the worker's consume loop.
"""
import re
import time

from kombu import Queue, pools
from kombu.exceptions import OperationalError

from .. import json_body
from .broker import DEFAULT_EXCHANGE, BrokerUnavailable, connect
from .jobs import PUBLISH_TIMEOUT_S, RETRY_POLICY, publishers
from .worker import RECONNECT_EVERY_S, consume

PRODUCTS = ("apple", "pear", "plum")   # the shop's catalogue: anything else is an unknown product
MAX_QUANTITY = 100
ORDER_EXAMPLE = '{"product": "apple", "quantity": 2}'
PRODUCT = re.compile(r"[a-z]{1,32}")


class BadOrder(ValueError):
    """A malformed order, an unknown product or a quantity out of range; answered 400."""


def parse_order(raw: bytes) -> tuple[str, int]:
    """``(product, quantity)`` from a request body, or BadOrder saying what to send."""
    try:
        body = json_body.object_of(raw, example=ORDER_EXAMPLE, max_bytes=4096)
        product = json_body.text(body, "product", PRODUCT, f"one of {', '.join(PRODUCTS)}")
        quantity = json_body.whole(body, "quantity", 1, MAX_QUANTITY)
    except json_body.BadJson as problem:
        raise BadOrder(str(problem)) from None
    if product not in PRODUCTS:
        raise BadOrder(f"unknown product {product!r}: the shop sells {', '.join(PRODUCTS)}")
    return product, quantity


def durable(name: str) -> Queue:
    """A durable queue reached through the default exchange by its own name (no binding to lose)."""
    return Queue(name, DEFAULT_EXCHANGE, routing_key=name, durable=True)


class Publisher:
    """Publishes persistent JSON messages from any thread; BrokerUnavailable within the bound."""

    def __init__(self, connection):
        self.connection = connection

    def publish(self, routing_key: str, body: dict, exchange=DEFAULT_EXCHANGE) -> None:
        """To the queue named ``routing_key`` (through the default exchange), or through ``exchange``."""
        lost = self.connection.connection_errors + self.connection.channel_errors + (OperationalError, OSError)
        try:
            publishers.submit(self._publish, routing_key, body, exchange).result(timeout=PUBLISH_TIMEOUT_S)
        except TimeoutError:
            raise BrokerUnavailable(f"{self.connection.as_uri()} did not take the message within "
                                    f"{PUBLISH_TIMEOUT_S:g} s") from None
        except lost as error:
            raise BrokerUnavailable(f"could not publish to {self.connection.as_uri()}: "
                                    f"{str(error).strip() or type(error).__name__}") from error

    def _publish(self, routing_key: str, body: dict, exchange) -> None:
        with pools.producers[self.connection].acquire(block=True, timeout=PUBLISH_TIMEOUT_S) as producer:
            # declared on the producer's own channel (once, then cached): a virtual transport (Redis)
            # routes by the exchange's type as that channel knows it, and the pool's are clones
            producer.publish(body, exchange=exchange, routing_key=routing_key, delivery_mode="persistent",
                             declare=[exchange] if exchange.name else [],
                             serializer="json", retry=True, retry_policy=RETRY_POLICY,
                             timeout=PUBLISH_TIMEOUT_S, confirm_timeout=PUBLISH_TIMEOUT_S)


def declare(connection, queues: list[Queue]) -> None:
    with connection.channel() as channel:
        for queue in queues:
            queue(channel).declare()


def message_counter(connection, queue: Queue):
    """A function answering how many messages wait in ``queue`` (not those a consumer holds
    unacknowledged), on one channel kept open: for one thread to call as often as it likes."""
    bound = queue(connection.channel())
    return lambda: bound.queue_declare().message_count   # (not passive: Redis may not know it yet)


def consume_forever(broker_url: str, visibility_timeout_s: float, queues: list[Queue], handle,
                    stopping: list) -> None:
    """Consume ``queues`` one message at a time (``handle(body, message)`` acks) until ``stopping``
    is non-empty; a lost broker is reconnected every half second. Logs "worker ready" when consuming."""
    connection = connect(broker_url, visibility_timeout_s)
    declare(connection, queues)
    while not stopping and connection is not None:
        lost = connection.connection_errors + connection.channel_errors + (OSError,)
        try:
            with connection:
                consume(connection, queues, handle, stopping, poll_s=0.25)   # SIGTERM heard within 0.25 s
        except lost as error:
            print(f"lost the broker ({str(error).strip() or type(error).__name__}): reconnecting", flush=True)
            connection = None
            while not stopping and connection is None:
                try:
                    connection = connect(broker_url, visibility_timeout_s)
                except BrokerUnavailable:
                    time.sleep(RECONNECT_EVERY_S)
