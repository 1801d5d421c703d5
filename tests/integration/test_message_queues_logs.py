"""Section 5: log lines shipped through the broker to an aggregator SIGKILLed while holding one.

On RabbitMQ and Redis the held line is delivered again and every line is counted once (errors per
minute right); on the embedded filesystem broker the held line is lost. A malformed line is
rejected and counts nothing, and the application keeps answering with no aggregator at all.
"""
import sys
import time
import urllib.request
import uuid

import pytest

from demos.message_queues.broker import connect
from demos.message_queues.logs import SCHEMA, Aggregator
from demos.message_queues.messaging import Publisher, durable
from demos.message_queues.store import Database
from load.harness import get_json, http_ready, log_ready, wait_for
from load.servers import free_port


class Pipeline:
    def __init__(self, processes, folder, broker_url: str = ""):
        self.processes, self.folder = processes, folder
        self.env = {"DATA_DIR": str(folder), "BROKER_URL": broker_url, "QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
                    "BROKER_VISIBILITY_TIMEOUT": "2"}
        self.aggregators = 0
        self.url = ""

    def app(self) -> str:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.processes("app", [sys.executable, "-m", "demos.message_queues.logs", "app", "--port", str(port)],
                       http_ready(f"{self.url}/health"), self.env)
        return self.url

    def aggregator(self, *args: str):
        self.aggregators += 1
        name = f"aggregator-{self.aggregators}"
        return self.processes(name, [sys.executable, "-m", "demos.message_queues.logs", "aggregate", *args],
                              log_ready(self.folder.parent / f"{name}.log", "worker ready"), self.env)

    def audit(self) -> dict:
        return Aggregator(Database(f"sqlite:///{self.folder}/logs.db", schema=SCHEMA)).audit()

    def requests(self, count: int) -> None:
        for _ in range(count):
            with urllib.request.urlopen(f"{self.url}/page", timeout=10) as response:
                assert response.status == 200


@pytest.fixture
def pipeline(processes, tmp_path):
    return lambda broker_url="": Pipeline(processes, tmp_path / "data", broker_url)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("broker", ["rabbitmq", "redis", "filesystem"])
def test_a_killed_aggregator_loses_nothing_on_a_real_broker_and_its_held_line_on_the_embedded_one(
        pipeline, request, broker):
    running = pipeline("" if broker == "filesystem" else request.getfixturevalue(f"{broker}_url"))
    doomed = running.aggregator("--hold-before-count", "60")
    running.app()
    running.requests(20)                                       # 18 INFO and 2 ERROR lines
    wait_for(lambda: get_json(f"{running.url}/stats")["shipped"] == 20, 10, "all 20 lines shipped")
    wait_for(lambda: "took" in doomed.log_path.read_text(), 10, "the aggregator to take a line")
    doomed.kill()
    running.aggregator()
    if broker == "filesystem":
        wait_for(lambda: running.audit()["lines"] >= 19, 15, "the other 19 lines counted")
        time.sleep(1.5)
        assert running.audit()["lines"] == 19                  # the held line: lost
        return
    wait_for(lambda: running.audit()["lines"] >= 20, 15, "all 20 lines counted")
    wait_for(lambda: running.audit()["deliveries"] >= 20, 10, "the held line delivered again")
    time.sleep(0.5)
    audit = running.audit()
    assert audit["lines"] == 20 and sum(audit["errors_per_minute"].values()) == 2


def test_a_malformed_line_counts_nothing_and_the_app_answers_with_no_aggregator(pipeline):
    running = pipeline()
    url = running.app()
    running.requests(5)                                        # no aggregator: the app does not care
    wait_for(lambda: get_json(f"{url}/stats")["shipped"] == 5, 10, "5 lines shipped")
    assert get_json(f"{url}/stats")["queue_length"] == 5
    connection = connect(running.env["BROKER_URL"] or f"filesystem://{running.folder}/broker")
    for bad in ({"id": "x"}, {"level": "ERROR"}, {"id": "a" * 32, "app": "shop", "level": "PANIC", "logged_at": 1.0}):
        Publisher(connection).publish(durable(f"{running.env['QUEUE_PREFIX']}.logs").name, bad)
    running.aggregator()
    wait_for(lambda: running.audit()["lines"] == 5, 15, "the 5 good lines counted")
    time.sleep(0.5)
    audit = running.audit()
    assert audit["lines"] == 5 and audit["deliveries"] == 5 and audit["errors_per_minute"] == {}
