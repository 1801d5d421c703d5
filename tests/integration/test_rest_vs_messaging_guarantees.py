"""Chapter 5's guarantees, with real processes: the events wiring loses nothing when the e-mail
consumer is SIGKILLed holding jobs it has not sent, on RabbitMQ and Redis (the redelivery is made
harmless by the key); on the embedded filesystem broker the same kill loses those jobs (shown, not
hidden); the REST chain with the e-mail service down answers 503 fast and makes no restock, so no
accepted restock is owed an e-mail it did not get."""
import time
import urllib.error

import pytest

from load.harness import wait_for
from load.rest_vs_messaging.stack import Stack, post, service_starter


@pytest.fixture
def stack(tmp_path):
    started_lists = []

    def make(wiring: str, broker_url: str = "", **options) -> Stack:
        folder = tmp_path / f"{wiring}-{len(started_lists)}"
        start, started = service_starter(folder)
        started_lists.append(started)
        return Stack(wiring, folder, start, broker_url=broker_url, **options).start()

    yield make
    for started in started_lists:
        for service in reversed(started):
            service.stop()


def restock(stack: Stack, product: str = "p1") -> int:
    try:
        post(f"{stack.url}/products/{product}/stock", {"quantity": 1})
        return 201
    except urllib.error.HTTPError as error:
        return error.code


def kill_email_consumer_holding_jobs(stack: Stack, restocks: int = 4) -> None:
    """Replace the e-mail consumer by one that holds each job 0.5 s before sending, restock, SIGKILL
    it while it holds jobs, then start a plain one."""
    stack.services["email-consumer-1"].kill()
    slow = stack.consumer("email", "--hold-before-send", "0.5", "--concurrency", "4")
    stack.seed({"p1": 5})
    assert [restock(stack) for _ in range(restocks)] == [201] * restocks
    time.sleep(1.0)                       # it holds jobs, some sent, some not
    slow.kill()
    stack.consumer("email")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_nothing_lost_when_the_email_consumer_is_sigkilled(broker, request, stack):
    events = stack("events", request.getfixturevalue(f"{broker}_url"))
    kill_email_consumer_holding_jobs(events)
    found = events.wait_until_settled(timeout_s=45)   # Redis redelivers after its 10 s visibility timeout
    assert found["ok"], found
    assert found["effective"] == found["owed"] == 20 and found["missing"] == 0 and found["orphans"] == 0


@pytest.mark.timeout(60)
def test_the_embedded_broker_loses_the_jobs_a_sigkilled_consumer_held(stack):
    events = stack("events")
    kill_email_consumer_holding_jobs(events)
    found = events.wait_until_settled(timeout_s=4)
    assert found["owed"] == 20
    assert found["missing"] > 0, f"expected the filesystem broker to lose the held jobs: {found}"


@pytest.mark.timeout(60)
def test_rest_with_the_email_service_down_refuses_fast_and_owes_nothing(stack):
    rest = stack("rest")
    rest.seed({"p1": 3})
    assert restock(rest) == 201
    rest.services["email"].kill()
    started = time.monotonic()
    statuses = [restock(rest) for _ in range(8)]
    assert statuses == [503] * 8
    assert time.monotonic() - started < 20          # the breaker fails them fast, no request hangs
    rest.services["email"].start()
    wait_for(lambda: restock(rest) == 201, 15, "the chain to work again after the breaker's reset")
    found = rest.wait_until_settled(timeout_s=10)
    assert found["ok"] and found["restocks"] >= 2 and found["missing"] == 0, found


@pytest.mark.timeout(60)
def test_every_wiring_sends_each_owed_email_once(stack):
    for wiring in ("rest-concurrent", "pipeline"):
        running = stack(wiring)
        running.seed({"p2": 2, "p7": 7})
        assert [restock(running, p) for p in ("p2", "p7", "p7")] == [201] * 3
        found = running.wait_until_settled(timeout_s=10)
        assert found["ok"] and found["effective"] == found["owed"] == 16 and found["repeats"] == 0, found


@pytest.mark.timeout(150)
@pytest.mark.parametrize("broker, options", [("rabbitmq", {}), ("redis", {"appendonly": True})])
def test_nothing_lost_when_the_broker_is_sigkilled_under_restocks(broker, options, start_server, stack):
    """Inventory keeps answering while the broker is dead (the outbox holds the events); after the
    broker comes back, every owed e-mail goes out once on RabbitMQ; on Redis at most what the
    consumers had in flight can be lost (kombu's pop-then-record window), the rest goes out once."""
    with start_server(broker, **options) as server:
        events = stack("events", server.url)
        events.seed({"p1": 4})
        before = [restock(events) for _ in range(3)]
        server.kill()
        during = [restock(events) for _ in range(3)]
        time.sleep(1.0)
        server.start()
        after = [restock(events) for _ in range(2)]
        assert before == [201] * 3 and during == [201] * 3 and after == [201] * 2
        found = events.wait_until_settled(timeout_s=60 if broker == "rabbitmq" else 25)
        if broker == "rabbitmq":
            assert found["ok"] and found["effective"] == found["owed"] == 32 and found["missing"] == 0, found
        else:
            # kombu's Redis transport pops a message (BRPOP) before it records it as unacked (HSET): a
            # kill between the two loses what each consumer had in flight: the notifier's event (its
            # 4 e-mails) and the e-mail consumer's prefetched jobs (8). Counted, not hidden.
            assert found["owed"] == 32 and found["orphans"] == 0 and found["repeats"] == 0, found
            assert found["effective"] + found["missing"] == 32 and found["missing"] <= 4 + 8, found


@pytest.mark.timeout(90)
def test_one_postgresql_database_holds_every_service_s_tables(stack, postgres_database_url):
    for wiring in ("rest", "events"):
        running = stack(wiring, database_url=postgres_database_url, queue_prefix=f"pg-{wiring}")
        running.seed({f"{wiring}-p3": 3})
        assert [restock(running, f"{wiring}-p3") for _ in range(2)] == [201] * 2
    found = running.wait_until_settled(timeout_s=20)   # one database: the books of both stacks together
    assert found["ok"] and found["owed"] == found["effective"] == 12, found
