"""Publishing the welcome jobs: one persistent message per channel, safe from many threads."""
import time

from kombu import pools

from .broker import DEFAULT_EXCHANGE, QUEUES, BrokerUnavailable


class Jobs:
    def __init__(self, connection):
        self.connection = connection

    def publish(self, user_id: int, email: str, phone: str) -> None:
        # kombu connections are not thread-safe; the producer pool hands each thread its own.
        try:
            self._publish(user_id, email, phone)
        except self.connection.connection_errors + self.connection.channel_errors as error:
            raise BrokerUnavailable(f"could not publish to {self.connection.as_uri()}: {error}") from error

    def _publish(self, user_id: int, email: str, phone: str) -> None:
        with pools.producers[self.connection].acquire(block=True, timeout=10) as producer:
            for channel, recipient in (("email", email), ("sms", phone)):
                producer.publish(
                    {"channel": channel, "user_id": user_id, "to": recipient,
                     "key": f"{channel}:{user_id}", "published_at": time.time()},
                    exchange=DEFAULT_EXCHANGE,
                    routing_key=QUEUES[channel].name,   # the queue was declared at start-up
                    delivery_mode="persistent",
                    serializer="json",
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0.1},
                )
