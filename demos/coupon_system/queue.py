"""The coupon queues through kombu, on the broker ``BROKER_URL`` names (chapter 4's ``connect``:
the embedded filesystem broker by default, Redis or RabbitMQ one setting away).

- ``coupon.rows``: a coupon Redis granted, for the consumer to write (consumer.py);
- ``coupon.bulk``: one user of a bulk issuance, for the bulk worker to issue (bulk.py).

Messages are persistent, queues durable, RabbitMQ publishes confirmed: a claim is answered as a
success only after its row's message is in the broker's hands.
"""
import signal
import socket
import time

from kombu import Exchange, Queue as KombuQueue, pools

from demos.brokers import BrokerUnavailable
from demos.message_queues.broker import connect

DEFAULT_EXCHANGE = Exchange("")
ROWS = KombuQueue("coupon.rows", DEFAULT_EXCHANGE, routing_key="coupon.rows", durable=True)
BULK = KombuQueue("coupon.bulk", DEFAULT_EXCHANGE, routing_key="coupon.bulk", durable=True)


class Queue:
    def __init__(self, connection):
        self.connection = connection

    @classmethod
    def connect(cls, settings) -> "Queue":
        connection = connect(settings.broker_url, settings.visibility_timeout_s)
        with connection.channel() as channel:
            for queue in (ROWS, BULK):
                queue(channel).declare()
        return cls(connection)

    def publish_row(self, batch_id: int, user_id: str, code: str, reserved_at: float) -> None:
        self._publish(ROWS, [{"batch_id": batch_id, "user_id": user_id, "code": code, "reserved_at": reserved_at}])

    def publish_bulk(self, job_id: int, batch_id: int, users: list[str]) -> None:
        self._publish(BULK, [{"job": job_id, "batch_id": batch_id, "user_id": user} for user in users])

    def _publish(self, queue: KombuQueue, bodies: list[dict]) -> None:
        # kombu connections are not thread-safe; the producer pool hands each thread its own
        try:
            with pools.producers[self.connection].acquire(block=True, timeout=10) as producer:
                for body in bodies:
                    producer.publish({**body, "published_at": time.time()}, exchange=DEFAULT_EXCHANGE,
                                     routing_key=queue.name, delivery_mode="persistent", serializer="json",
                                     retry=True, retry_policy={"max_retries": 2, "interval_start": 0.1})
        except self.connection.connection_errors + self.connection.channel_errors as error:
            raise BrokerUnavailable(f"could not publish to {self.connection.as_uri()}: {error}") from error

    def depth(self) -> dict:
        """Messages waiting in each queue (not those a consumer holds unacknowledged)."""
        with self.connection.channel() as channel:
            return {queue.name: queue(channel).queue_declare(passive=True).message_count for queue in (ROWS, BULK)}


class Pacer:
    """At most ``rate`` events a second, evenly spaced (a steady write rate); no bursts to catch up."""

    def __init__(self, rate: float):
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self.due = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self.due > now:
            time.sleep(self.due - now)
        self.due = max(self.due, now - self.gap) + self.gap


def consume(queue: Queue, source: KombuQueue, handle, *, prefetch: int, ready: str) -> None:
    """Feed ``source``'s messages to ``handle(body, message)`` (which acks) until SIGTERM, which
    lets the message in hand finish; ``ready`` is printed once consuming (tests wait for it)."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    connection = queue.connection
    with connection, connection.Consumer([source], callbacks=[handle], accept=["json"], prefetch_count=prefetch):
        print(ready, flush=True)
        while not stopping:
            try:
                connection.drain_events(timeout=1)
            except socket.timeout:
                pass
