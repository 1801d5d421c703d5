"""Publishing the welcome jobs: one persistent message per channel, safe from many threads.

A broker that is down, restarting or frozen must not hold a registration: the publish gets
``PUBLISH_TIMEOUT_S`` (one reconnection included), then BrokerUnavailable, which the app answers
with 503 and the user's rollback. The bound is the caller's wait on the publishing thread, since
kombu's own timeouts add up over its retries (6 s against a frozen RabbitMQ, 10 s against Redis).
A publish waits inside the user's transaction, and SQLite has one write lock: while the broker is
frozen, every registration would queue behind the one holding it for its whole second. So after a
failure the broker is taken for down for ``RETRY_AFTER_S``: publishes fail at once (a fast 503),
and the first one after that tries the broker again (a circuit breaker, in its simplest form).
A publish still running when the caller gave up may yet reach the broker: a job for a user rolled
back, the gap a transactional outbox closes (see the chapter's README).
"""
import time
from concurrent.futures import ThreadPoolExecutor

from kombu import pools
from kombu.exceptions import OperationalError

from .broker import DEFAULT_EXCHANGE, BrokerUnavailable, queues

PUBLISH_TIMEOUT_S = 1.0
# on a lost connection: reconnect once, at once; a second failure is the broker's outage, not a blip
RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
RETRY_AFTER_S = 2.0
# the threads that talk to the broker; a request thread waits for one at most PUBLISH_TIMEOUT_S
publishers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="publish")


class Jobs:
    def __init__(self, connection, queue_prefix: str = "registration"):
        self.connection = connection
        self.queues = queues(queue_prefix)
        self.down_until = 0.0          # time.monotonic() before which the broker is taken for down
        self.last_failure = ""

    def publish(self, user_id: int, email: str, phone: str) -> None:
        if time.monotonic() < self.down_until:
            raise BrokerUnavailable(f"{self.last_failure} (not tried again for {RETRY_AFTER_S:g} s)")
        try:
            self._publish_within_the_bound(user_id, email, phone)
        except BrokerUnavailable as failure:
            self.last_failure, self.down_until = str(failure), time.monotonic() + RETRY_AFTER_S
            raise

    def _publish_within_the_bound(self, user_id: int, email: str, phone: str) -> None:
        # kombu raises the transport's own errors, or its OperationalError once ensure() gives up.
        lost = self.connection.connection_errors + self.connection.channel_errors + (OperationalError, OSError)
        try:
            publishers.submit(self._publish, user_id, email, phone).result(timeout=PUBLISH_TIMEOUT_S)
        except TimeoutError:                 # the wait, or a socket's (both are TimeoutError)
            raise BrokerUnavailable(f"{self.connection.as_uri()} did not take the jobs within "
                                    f"{PUBLISH_TIMEOUT_S:g} s") from None
        except lost as error:
            raise BrokerUnavailable(f"could not publish to {self.connection.as_uri()}: "
                                    f"{str(error).strip() or type(error).__name__}") from error

    def _publish(self, user_id: int, email: str, phone: str) -> None:
        # kombu connections are not thread-safe; the producer pool hands each thread its own
        with pools.producers[self.connection].acquire(block=True, timeout=PUBLISH_TIMEOUT_S) as producer:
            for channel, recipient in (("email", email), ("sms", phone)):
                producer.publish(
                    {"channel": channel, "user_id": user_id, "to": recipient,
                     "key": f"{channel}:{user_id}", "published_at": time.time()},
                    exchange=DEFAULT_EXCHANGE,
                    routing_key=self.queues[channel].name,   # the queue was declared at start-up
                    delivery_mode="persistent",
                    serializer="json",
                    retry=True,
                    retry_policy=RETRY_POLICY,
                    timeout=PUBLISH_TIMEOUT_S,
                    confirm_timeout=PUBLISH_TIMEOUT_S,
                )
