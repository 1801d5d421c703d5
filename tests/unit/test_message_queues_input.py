"""Bad input gets a clear 4xx and writes nothing; good input registers once (in-process, no sleeps)."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from demos.message_queues import parallel, queued, serial
from demos.message_queues.app import BadRequest, Services, create_app, parse_body, parse_user
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
    # what an attacker tries: each of these once answered 500 or got through
    ('{"email": "\\ud800@example.com", "phone": "+15551234567"}', "application/json", 400, "email"),
    ('{"email": "a@example.com", "phone": "\\udfff"}', "application/json", 400, "phone"),
    ("[" * 2040 + "]" * 2040, "application/json", 400, "JSON object"),           # RecursionError
    ('{"email": ' + "[" * 2000 + "]" * 2000 + "}", "application/json", 400, "JSON object"),
    (b"\xff\xfe\x00garbage", "application/json", 400, "JSON object"),              # not UTF-8
    (json.dumps({"email": "ada@example.com\n", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": " ada@example.com", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "ada@example.com\t", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "a\x00da@example.com", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "a\x07da@example.com", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "ada@exa\u200bmple.com", "phone": "+15551234567"}), "application/json", 400, "email"),
    (json.dumps({"email": "ada@example.com", "phone": "+15551234567\n"}), "application/json", 400, "phone"),
    (json.dumps({"email": "ada@example.com", "phone": " +15551234567"}), "application/json", 400, "phone"),
    (json.dumps({"email": "ada@example.com", "phone": "+1555123456\x00"}), "application/json", 400, "phone"),
    (json.dumps({"email": "ada@example.com", "phone": "1" * 200}), "application/json", 400, "phone"),
    (json.dumps({"email": "ada@example.com", "phone": "\u0661" * 10}), "application/json", 400, "phone"),  # Arabic digits
    (json.dumps({"email": "a@" + "d" * 1000 + ".com", "phone": "+15551234567"}), "application/json", 400, "email"),
]


@pytest.mark.parametrize("body,content_type,status,word", BAD_BODIES)
def test_bad_input_gets_a_clear_error_and_writes_nothing(client_and_services, body, content_type, status, word):
    client, services = client_and_services
    response = client.post("/register", data=body, content_type=content_type)
    assert response.status_code == status
    assert word in response.get_json()["error"]
    assert services.database.audit() == {"users": 0, "attempts": {}, "sends": {}}
    assert client.get("/stats").get_json()["statuses"] == {str(status): 1}


def test_each_variant_registers_once_and_sends_email_and_sms(client_and_services, request):
    client, services = client_and_services
    response = client.post("/register", json=GOOD)
    assert response.status_code == 201
    user_id = response.get_json()["id"]
    if request.node.callspec.params["client_and_services"] == "queued":   # the worker sends them later
        assert services.jobs.published == [(user_id, "ada@example.com", "+15551234567")]
        assert services.database.audit() == {"users": 1, "attempts": {}, "sends": {}}
    else:                                                                  # sent before the answer
        assert services.jobs.published == []
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
    again = client.post("/register", json={**GOOD, "email": "ADA@example.com"})
    assert again.status_code == 409
    assert again.get_json() == {"error": "ada@example.com is registered already"}
    assert client.get("/stats").get_json() == {"register_requests": 17, "statuses": {"201": 1, "409": 16}}


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


LOCAL_64 = "a" * 64


@pytest.mark.parametrize("email", [
    "a@b.cd",                                   # the shortest: one-letter local part, two-letter top level
    f"{LOCAL_64}@example.com",                  # the longest local part
    "a@" + "d" * (254 - len("a@.com")) + ".com",  # exactly 254 characters
    "ADA.Lovelace+tag@Example.co.uk",
    "ädä@exämple.com",                          # printable non-ASCII is fine
])
def test_parse_user_accepts_the_limits(email):
    assert parse_user({"email": email, "phone": "+15551234567"}).email == email.lower()


@pytest.mark.parametrize("email", [
    "a@b.c",                                    # top level of one letter
    f"{LOCAL_64}a@example.com",                 # local part of 65
    "a@" + "d" * (255 - len("a@.com")) + ".com",  # 255 characters
    "@example.com", "a@@example.com", "a@example", "a@example.", "a b@example.com",
    "ada@example.com\n", "\nada@example.com", "ada@example.com\r", "ada@exam\x00ple.com",
    "ada\ud800@example.com", "ada@example.com\udfff", "ada@example.com\x7f", "ada@example.com\x85",
])
def test_parse_user_rejects_each_bad_email(email):
    with pytest.raises(BadRequest, match="email"):
        parse_user({"email": email, "phone": "+15551234567"})


@pytest.mark.parametrize("phone", ["123456", "+123456", "1" * 15, "+" + "1" * 15, "+15551234567"])
def test_parse_user_accepts_phones_of_6_to_15_digits(phone):
    assert parse_user({"email": "a@example.com", "phone": phone}).phone == phone


@pytest.mark.parametrize("phone", ["12345", "+12345", "1" * 16, "+" + "1" * 16, "++123456", "123456+",
                                   "1" * 200, "123 456", "123456\n", "\n123456", "+1555-1234", "",
                                   "\u0661\u0662\u0663\u0664\u0665\u0666", "\ud800123456"])
def test_parse_user_rejects_each_bad_phone(phone):
    with pytest.raises(BadRequest, match="phone"):
        parse_user({"email": "a@example.com", "phone": phone})


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"nul", b"\xff", "[" * 5000, b'{"a": 1} x'])
def test_parse_body_turns_any_non_json_into_bad_request(raw):
    with pytest.raises(BadRequest, match="JSON object"):
        parse_body(raw if isinstance(raw, bytes) else raw.encode())


def test_parse_body_reads_utf16_and_keeps_the_values():
    assert parse_body('{"email": "ä@example.com"}'.encode("utf-16")) == {"email": "ä@example.com"}


def test_a_trailing_newline_cannot_register_an_address_twice(client_and_services):
    client, services = client_and_services
    assert client.post("/register", json=GOOD).status_code == 201
    for variant in ("ada@example.com\n", "ada@example.com ", " ada@example.com", "ADA@example.com"):
        assert client.post("/register", json={**GOOD, "email": variant}).status_code in (400, 409), variant
    assert services.database.audit()["users"] == 1


def test_the_answer_to_an_unexpected_error_is_json_500_and_counted(tmp_path):
    def broken(services, user):
        raise RuntimeError("a bug")
    client = create_app(broken, make_services(tmp_path)).test_client()
    response = client.post("/register", json=GOOD)
    assert response.status_code == 500 and response.get_json() == {"error": "internal error: RuntimeError"}
    assert client.get("/stats").get_json() == {"register_requests": 1, "statuses": {"500": 1}}


def test_health_and_audit_answer_json(client_and_services):
    client, _ = client_and_services
    assert client.get("/health").get_json() == {"status": "ok"}
    assert client.get("/audit").get_json() == {"users": 0, "attempts": {}, "sends": {}}
    assert client.get("/stats").get_json() == {"register_requests": 0, "statuses": {}}
