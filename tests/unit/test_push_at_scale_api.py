"""The push API in-process (Flask's test client, a store in a temp folder, a bus that records):
stored before routed, one bus message per gateway, and bad input a 4xx with a JSON reason that
stores nothing."""
import json

import pytest

from demos.push_at_scale import api, tokens
from demos.push_at_scale.bus import BrokerUnavailable
from demos.push_at_scale.store import Store


class RecordingBus:
    def __init__(self, fail=False):
        self.published, self.fail = [], fail

    def publish(self, gateway, items):
        if self.fail:
            raise BrokerUnavailable("down")
        self.published.append((gateway, items))


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    store = Store(f"sqlite:///{tmp_path / 'push.db'}")
    services = api.Services(store, RecordingBus(), ["ws://127.0.0.1:9001"])
    client = api.create_app(services).test_client()
    for device in ("d1", "d2", "d3"):
        assert client.post("/devices", json={"device": device, "topics": ["news"]}).status_code == 201
    services.routes.set("d1", "g1")
    services.routes.set("d2", "g2")
    services.routes.set("d3", "g1")
    services.routes.alive("g1")
    services.routes.alive("g2")
    return client, services


def stored(services) -> int:
    return services.store.autocommit().execute("SELECT count(*) FROM push_messages").fetchone()[0]


def test_a_push_is_stored_numbered_and_sent_once_per_gateway(app):
    client, services = app
    answer = client.post("/push", json={"devices": ["d1", "d2", "d3"], "body": "hi"})
    assert answer.status_code == 202 and answer.json["stored"] == 3 and answer.json["gateways"] == 2
    assert sorted((g, len(items)) for g, items in services.bus.published) == [("g1", 2), ("g2", 1)]
    client.post("/push", json={"topic": "news", "body": "all"})
    assert sorted(g for g, items in services.bus.published[-2:]) == ["g1", "g2"]   # one each, not one per device
    second = client.post("/push", json={"device": "d1", "body": "again"}).json
    assert second["id"] == "d:d1:2" and services.store.last_seq("t:news") == 1


def test_registering_gives_a_token_the_gateways_accept(app):
    client, _ = app
    answer = client.post("/devices", json={"device": "phone-7", "topics": ["a", "b"]}).json
    claims = tokens.verify(answer["token"])
    assert claims.device == "phone-7" and claims.topics == ("a", "b") and answer["gateways"]


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "JSON"),
    (b"[" * 100 + b"]" * 100, 400, "nested"),
    (json.dumps({"device": "d1", "body": "\ud800"}).encode(), 400, "surrogate"),
    (json.dumps({"device": "d1\n", "body": "x"}).encode(), 400, "device"),
    (json.dumps({"device": "d1", "body": 5}).encode(), 400, "body"),
    (json.dumps({"device": "d1", "body": "x" * 5000}).encode(), 400, "body"),
    (json.dumps({"device": "d1", "topic": "news", "body": "x"}).encode(), 400, "exactly one"),
    (json.dumps({"devices": [], "body": "x"}).encode(), 400, "devices"),
    (json.dumps({"devices": ["d1", 3], "body": "x"}).encode(), 400, "devices"),
    (json.dumps({"device": "d1", "body": "x", "urgent": "no"}).encode(), 400, "urgent"),
    (json.dumps({"device": "nobody", "body": "x"}).encode(), 404, "unknown device"),
    (json.dumps({"devices": ["d1", "nobody"], "body": "x"}).encode(), 404, "unknown device"),
    (json.dumps({"topic": "sports", "body": "x"}).encode(), 404, "unknown topic"),
    (b"x" * 70_000, 413, ""),
])
def test_bad_pushes_are_refused_with_a_reason_and_store_nothing(app, body, status, reason):
    client, services = app
    answer = client.post("/push", data=body, content_type="application/json")
    assert answer.status_code == status and "error" in answer.json
    assert reason.lower() in answer.json["error"].lower()
    assert stored(services) == 0 and services.bus.published == []


@pytest.mark.parametrize("body", [{"device": "a b"}, {"device": "d", "topics": "news"}, {"device": "d", "topics": ["x\n"]},
                                  {"device": "d", "topics": ["t"] * 40}, []])
def test_bad_registrations_are_refused(app, body):
    client, _ = app
    assert client.post("/devices", json=body).status_code == 400


def test_a_broker_that_does_not_answer_still_stores_and_says_not_routed(app):
    client, services = app
    services.bus = RecordingBus(fail=True)
    answer = client.post("/push", json={"device": "d1", "body": "x"})
    assert answer.status_code == 202 and answer.json["routed"] is False and stored(services) == 1
