"""On Redis, a job a SIGKILLed consumer held comes back after the visibility timeout, even when the
consumer died holding the lock of kombu's redelivery scan (``unacked_mutex``): the lock lapses in
``UNACKED_MUTEX_EXPIRE_S``, not in kombu's default 300 s, during which nothing would come back.

And the one job kombu's Redis transport cannot keep: it takes a job off the list (BRPOP) and then
records it as unacknowledged (HSET), two commands, so Redis dying between the two loses that job,
append-only file or not. RabbitMQ holds a delivered job until its ack and has no such window."""
import time
import uuid

import pytest
import redis
from kombu import Queue

from demos.message_queues.broker import DEFAULT_EXCHANGE, UNACKED_MUTEX_EXPIRE_S, connect

pytestmark = pytest.mark.servers
VISIBILITY_S = 1
WAIT_S = 15   # far less than kombu's default lock of 300 s, more than ours plus the timeout


@pytest.mark.timeout(60)
def test_a_job_held_by_a_consumer_killed_in_the_redelivery_scan_comes_back(redis_url):
    queue = Queue(f"redelivery-{uuid.uuid4().hex[:8]}", DEFAULT_EXCHANGE, routing_key=None, durable=True)
    queue.routing_key = queue.name
    dead = connect(redis_url, VISIBILITY_S)
    with dead.Producer() as producer:
        producer.publish({"job": 1}, exchange=DEFAULT_EXCHANGE, routing_key=queue.name, declare=[queue])
    held = queue(dead.channel()).get(no_ack=False)          # taken, never acknowledged
    assert held is not None and held.payload == {"job": 1}
    # the dead consumer was inside restore_visible: the scan's lock is taken and never released
    client = redis.Redis.from_url(redis_url)
    assert client.lock("unacked_mutex", timeout=UNACKED_MUTEX_EXPIRE_S).acquire(blocking=False)
    # (the process is gone: its connection is simply abandoned, as SIGKILL leaves it)

    alive = connect(redis_url, VISIBILITY_S)
    got, deadline = [], time.monotonic() + WAIT_S
    with alive.Consumer(queue, callbacks=[lambda body, message: (got.append(body), message.ack())]):
        while not got and time.monotonic() < deadline:
            try:
                alive.drain_events(timeout=0.5)
            except TimeoutError:
                pass
    assert got == [{"job": 1}], f"nothing came back within {WAIT_S} s"
    alive.release()
    dead.release()


@pytest.mark.timeout(60)
def test_redis_dying_between_the_pop_and_the_unacked_record_loses_that_job(start_server, monkeypatch):
    from kombu.transport import redis as kombu_redis

    with start_server("redis", appendonly=True) as server:
        queue = Queue("window", DEFAULT_EXCHANGE, routing_key="window", durable=True)
        with connect(server.url, VISIBILITY_S) as connection, connection.Producer() as producer:
            producer.publish({"job": 1}, exchange=DEFAULT_EXCHANGE, routing_key="window", declare=[queue])
        record = kombu_redis.QoS.append

        def redis_dies_first(qos, message, delivery_tag):   # the consumer is descheduled right there
            server.kill()
            return record(qos, message, delivery_tag)

        monkeypatch.setattr(kombu_redis.QoS, "append", redis_dies_first)
        consumer = connect(server.url, VISIBILITY_S)
        with pytest.raises(consumer.connection_errors):
            queue(consumer.channel()).get(no_ack=False)
        monkeypatch.undo()
        server.start()
        client = redis.Redis.from_url(server.url)
        assert (client.llen("window"), client.hlen("unacked")) == (0, 0), "the job is neither queued nor unacked"
