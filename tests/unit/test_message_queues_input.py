"""Bad input gets a clear 4xx and writes nothing; good input registers once (in-process, no sleeps)."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from demos.message_queues import parallel, queued, serial
from demos.message_queues.app import Services, create_app, parse_user, BadRequest
from demos.message_queues.providers import Provider
from demos.message_queues.store import Database

GOOD = {"email": "Ada@Example.com", "phone": "+15551234567"}


def make_services(tmp_path, jobs=None) -> Services:
    database = Database(f"sqlite:///{tmp_path / 'registrations.db'}")
    return Services(database, Provider("email", 0, database), Provider("sms", 0, database), jobs)


@pytest.fixture(params=["serial", "parallel", "queued"])
def client_and_services(request, tmp_path, recording_jobs):
    variant = {"serial": serial, "parallel": parallel, "queued": queued}[request.param]
    services = make_services(tmp_path, recording_jobs())
    return create_app(variant.register, services).test_client(), services


BAD_BODIES = [
    ("not json", "text/plain", 400, "JSON object"),
    ("{\"email\": ", "application/json", 400, "JSON object"),
    ("[1, 2]", "application/json", 400, "JSON object"),
    (json.dumps({"phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": 42, "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "no-at-sign", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "a@example.com"}), "application/json", 400, "phone"),
    (json.dumps({"email": "a@example.com", "phone": 15551234567}), "application/json", 400, "phone"),
    (json.dumps({"email": "a@example.com", "phone": "call me"}), "application/json", 400, "phone"),
    (json.dumps({"email": "a" * 300 + "@example.com", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "a@example.com", "phone": "+1555", "pad": "x" * 5000}), "application/json", 413, "larger"),
]


@pytest.mark.parametrize("body,content_type,status,word", BAD_BODIES)
def test_bad_input_gets_a_clear_error_and_writes_nothing(client_and_services, body, content_type, status, word):
    client, services = client_and_services
    response = client.post("/register", data=body, content_type=content_type)
    assert response.status_code == status
    assert word in response.get_json()["error"]
    assert services.database.audit() == {"users": 0, "attempts": {}, "sends": {}}
    assert client.get("/stats").get_json()["statuses"] == {str(status): 1}


def test_each_variant_registers_once_and_sends_email_and_sms(client_and_services):
    client, services = client_and_services
    response = client.post("/register", json=GOOD)
    assert response.status_code == 201
    user_id = response.get_json()["id"]
    if services.jobs.published:   # queued: the jobs are published, the worker sends them
        assert services.jobs.published == [(user_id, "ada@example.com", "+15551234567")]
        assert services.database.audit()["sends"] == {}
    else:
        assert services.database.audit() == {"users": 1, "attempts": {"email": 1, "sms": 1},
                                              "sends": {"email": 1, "sms": 1}}


def test_a_registered_email_gets_409_even_under_concurrent_attempts(client_and_services):
    client, services = client_and_services
    app = client.application

    def attempt(_):
        return app.test_client().post("/register", json=GOOD).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(attempt, range(16)))
    assert statuses == [201] + [409] * 15
    assert services.database.audit()["users"] == 1
    assert client.post("/register", json={**GOOD, "email": "ADA@example.com"}).status_code == 409


def test_unknown_route_and_method_answer_json(client_and_services):
    client, _ = client_and_services
    assert client.get("/nowhere").status_code == 404
    assert "error" in client.get("/nowhere").get_json()
    assert client.get("/register").status_code == 405


def test_queued_rolls_the_user_back_when_the_broker_refuses(tmp_path, recording_jobs):
    services = make_services(tmp_path, recording_jobs(fail=True))
    client = create_app(queued.register, services).test_client()
    response = client.post("/register", json=GOOD)
    assert response.status_code == 503
    assert "try again later" in response.get_json()["error"]
    assert services.database.audit()["users"] == 0
    services.jobs.fail = False
    assert client.post("/register", json=GOOD).status_code == 201   # the address was not taken


@pytest.mark.parametrize("body", [None, "x", 3, [], {"email": None, "phone": None}])
def test_parse_user_rejects_non_objects_and_nulls(body):
    with pytest.raises(BadRequest):
        parse_user(body)
