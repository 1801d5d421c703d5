"""Bad input through the running server (waitress, a real socket), on SQLite and on PostgreSQL:
each attack gets its 4xx with a JSON reason, never a 500, and writes nothing; then a slice of the
Hypothesis properties (tests/unit/test_message_queues_properties.py) against the same process."""
import http.client
import json

import pytest
from hypothesis import HealthCheck, given, settings

from tests.integration.conftest import Registration
from tests.unit.test_message_queues_properties import BODIES

ATTACKS = [
    (b'{"email": "\\ud800@example.com", "phone": "+15551234567"}', 400),
    (b'{"email": "ada@example.com", "phone": "\\udfff"}', 400),
    (b'{"email": "ada@exa\\u0000mple.com", "phone": "+15551234567"}', 400),     # NUL: PostgreSQL refuses it
    (b"[" * 2040 + b"]" * 2040, 400),                                               # RecursionError
    (json.dumps({"email": "ada@example.com\n", "phone": "+15551234567"}).encode(), 400),
    (json.dumps({"email": "ada@example.com", "phone": "+15551234567\n"}).encode(), 400),
    (json.dumps({"email": " ada@example.com", "phone": "+15551234567"}).encode(), 400),
    (json.dumps({"email": "ada@example.com", "phone": "1" * 200}).encode(), 400),
    (json.dumps({"email": "a@" + "d" * 1000 + ".com", "phone": "+15551234567"}).encode(), 400),
    (b'{"email": ', 400),
    (b"\xff\xfe\x00", 400),
    (b'{"pad": "' + b"x" * 5000 + b'"}', 413),
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """One serial service (no sleeps) for the module, on each database in turn."""
    database_url = ""
    if request.param == "postgres":
        from load.servers import create_database
        database_url = create_database(request.getfixturevalue("postgres_url"), "bad_input")
    running = Registration(tmp_path_factory.mktemp("bad-input"), "serial", env={"STEP_MS": "0"},
                           database_url=database_url)
    running.start(threads=2)
    yield running
    running.stop()
    if database_url:
        from load.servers import drop_database
        drop_database(request.getfixturevalue("postgres_url"), "bad_input")


def post(url: str, body: bytes) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/register", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("body,status", ATTACKS, ids=range(len(ATTACKS)))
def test_each_attack_gets_its_4xx_and_writes_nothing(server, body, status):
    before = server.audit()
    answer = post(server.url, body)
    assert answer[0] == status and answer[1]["error"], answer
    assert server.audit() == before


def test_a_good_registration_still_works_after_the_attacks(server):
    status, answer = post(server.url, json.dumps({"email": "survivor@example.com", "phone": "+15551234567"}).encode())
    assert status == 201 and answer["id"] >= 1
    assert "500" not in server.audit() and "500" not in json.dumps(get_stats(server))


def get_stats(server) -> dict:
    from load.harness import get_json
    return get_json(f"{server.url}/stats")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_any_body_through_the_server_gets_201_or_a_4xx_and_a_refusal_writes_nothing(server, body):
    before = server.audit()
    status, answer = post(server.url, body)
    assert status in (201, 400, 409), (status, answer)
    if status != 201:
        assert answer["error"] and server.audit() == before
