"""Publishing the welcome jobs: one persistent message per channel, safe from many threads.

A broker that is down or restarting must not hold a registration: a publish gets one reconnection
and about a second (``PUBLISH_TIMEOUT_S`` for the connection, the write and RabbitMQ's confirm),
then raises BrokerUnavailable, which the app answers with 503 and the user's rollback.
"""
import time

from kombu import pools
from kombu.exceptions import OperationalError

from .broker import DEFAULT_EXCHANGE, BrokerUnavailable, queues

PUBLISH_TIMEOUT_S = 1.0
# on a lost connection: reconnect once, at once; a second failure is the broker's outage, not a blip
RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


class Jobs:
    def __init__(self, connection, queue_prefix: str = "registration"):
        self.connection = connection
        self.queues = queues(queue_prefix)

    def publish(self, user_id: int, email: str, phone: str) -> None:
        # kombu connections are not thread-safe; the producer pool hands each thread its own.
        # kombu raises the transport's own errors, or its OperationalError once ensure() gives up.
        lost = self.connection.connection_errors + self.connection.channel_errors + (OperationalError, OSError)
        try:
            self._publish(user_id, email, phone)
        except lost as error:
            raise BrokerUnavailable(f"could not publish to {self.connection.as_uri()}: "
                                    f"{str(error).strip() or type(error).__name__}") from error

    def _publish(self, user_id: int, email: str, phone: str) -> None:
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
