"""Publishing the jobs through kombu, in-process: on the embedded broker they arrive in their
queues; against a port where no broker listens (a real refusal, not a stand-in raising what the
code expects) the publish fails fast with BrokerUnavailable, and for RETRY_AFTER_S it fails at once."""
import time

import pytest
from kombu import Connection

from demos.message_queues import jobs as jobs_module
from demos.message_queues.broker import BrokerUnavailable, backlog, connect, declare
from demos.message_queues.jobs import PUBLISH_TIMEOUT_S, RETRY_AFTER_S, Jobs
from load.servers import free_port


def test_a_publish_puts_one_email_and_one_sms_job_in_their_queues(tmp_path):
    connection = connect(f"filesystem://{tmp_path}/broker")
    jobs = Jobs(connection, "unit")
    declare(connection, jobs.queues)
    jobs.publish(7, "ada@example.com", "+15551234567")
    assert backlog(connection, jobs.queues) == 2
    bodies = {}
    for channel, queue in jobs.queues.items():
        with connection.channel() as channel_:
            message = queue(channel_).get(no_ack=True)
            bodies[channel] = message.payload
    assert bodies["email"]["key"] == "email:7" and bodies["email"]["to"] == "ada@example.com"
    assert bodies["sms"]["key"] == "sms:7" and bodies["sms"]["to"] == "+15551234567"
    assert {body["user_id"] for body in bodies.values()} == {7}
    assert jobs.queues["email"].name == "unit.email"
    connection.release()


def test_each_job_is_a_persistent_json_message_with_its_publish_time(tmp_path):
    connection = connect(f"filesystem://{tmp_path}/broker")
    jobs = Jobs(connection)
    assert {queue.name for queue in jobs.queues.values()} == {"registration.email", "registration.sms"}
    declare(connection, jobs.queues)
    before = time.time()
    jobs.publish(8, "ada@example.com", "+15551234567")
    with connection.channel() as channel:
        message = jobs.queues["email"](channel).get(no_ack=True)
    assert message.properties["delivery_mode"] == 2            # survives a RabbitMQ restart
    assert message.content_type == "application/json"
    assert set(message.payload) == {"channel", "user_id", "to", "key", "published_at"}
    assert message.payload["channel"] == "email" and before <= message.payload["published_at"] <= time.time()
    connection.release()


@pytest.mark.parametrize("scheme", ["amqp://guest:guest@127.0.0.1:{port}//", "redis://127.0.0.1:{port}/0"])
def test_a_refused_publish_is_broker_unavailable_then_fails_at_once_for_a_while(scheme, monkeypatch):
    jobs = Jobs(Connection(scheme.format(port=free_port()), connect_timeout=1))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="could not publish to"):
        jobs.publish(1, "ada@example.com", "+15551234567")
    assert time.monotonic() - started < PUBLISH_TIMEOUT_S + 0.5
    called = []
    monkeypatch.setattr(jobs, "_publish", lambda *args: called.append(args))
    assert "could not publish to" in jobs.last_failure      # the pause says why
    with pytest.raises(BrokerUnavailable, match=f"could not publish to .* \\(not tried again for {RETRY_AFTER_S:g} s"):
        jobs.publish(2, "bob@example.com", "+15551234567")
    assert called == []                                    # the breaker answered, not the broker
    assert RETRY_AFTER_S - 1 < jobs.down_until - time.monotonic() <= RETRY_AFTER_S
    jobs.down_until = time.monotonic() - 0.001             # the pause is over:
    jobs.publish(3, "cy@example.com", "+15551234567")     # it tries again
    assert called == [(3, "cy@example.com", "+15551234567")]


def test_a_publish_that_does_not_finish_in_time_is_broker_unavailable(tmp_path, monkeypatch):
    jobs = Jobs(connect(f"filesystem://{tmp_path}/broker"))
    monkeypatch.setattr(jobs_module, "PUBLISH_TIMEOUT_S", 0.2)
    monkeypatch.setattr(jobs, "_publish", lambda *args: time.sleep(1))   # a frozen broker
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="did not take the jobs within 0.2 s"):
        jobs.publish(1, "ada@example.com", "+15551234567")
    assert time.monotonic() - started < 0.9
    assert jobs.down_until > time.monotonic()
