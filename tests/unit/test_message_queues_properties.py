"""Property tests for chapter 4's input (Hypothesis): whatever the body, ``POST /register`` answers
201 or a 4xx with a JSON reason, never a 500, and a refused request writes nothing.

Text is drawn from a character list that holds the troublemakers on purpose (lone surrogates, NUL,
newlines, other scripts' digits): Hypothesis's default text strategy almost never draws a lone
surrogate, and one crashed both chapters. The same properties against the running server:
tests/integration/test_message_queues_bad_input.py.
"""
import json
import tempfile

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from demos.message_queues import serial
from demos.message_queues.app import (EMAIL, MAX_EMAIL_CHARS, PHONE, BadRequest, Services, create_app,
                                      parse_body, parse_user)
from demos.message_queues.providers import Provider
from demos.message_queues.store import Database

TROUBLE = ["\ud800", "\udfff", "\x00", "\n", "\r", "\t", " ", "\x7f", "\x85", "\u200b", "\u0661", "\uff11"]
CHARS = ["a", "Z", "é", "@", ".", "+", "-", "1", "5", "9", "\"", "\\", "{", "[", *TROUBLE]

text = st.text(alphabet=st.sampled_from(CHARS), max_size=24)
digits = st.text(alphabet=st.sampled_from(["1", "2", "5", "+", *TROUBLE]), max_size=20)
plain = st.text(alphabet=st.sampled_from("abz09.+-é"), min_size=1, max_size=12)
near_email = st.builds(lambda local, domain, top: f"{local}@{domain}.{top}", plain | text, plain | text, plain | text)
near_phone = st.one_of(digits, st.integers(min_value=-10, max_value=10 ** 20).map(str),
                       st.integers(min_value=10 ** 5, max_value=10 ** 15).map(lambda n: f"+{n}"))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8)
user_body = st.fixed_dictionaries({"email": near_email | json_value, "phone": near_phone | json_value},
                                  optional={"name": json_value})
any_json = st.one_of(user_body, json_value)
BODIES = st.one_of(any_json.map(lambda body: json.dumps(body).encode()),   # lone surrogates become \ud800
                   st.binary(max_size=300),
                   any_json.map(lambda body: json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")))


@pytest.fixture(scope="module")
def app_and_database():
    folder = tempfile.mkdtemp(prefix="mq-properties-")
    database = Database(f"sqlite:///{folder}/registrations.db")
    services = Services(database, Provider("email", 0, database), Provider("sms", 0, database))
    return create_app(serial.register, services), database


def well_formed(email: str, phone: str) -> bool:
    return (len(email) <= MAX_EMAIL_CHARS and email.isprintable() and EMAIL.fullmatch(email) is not None
            and PHONE.fullmatch(phone) is not None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_any_body_gets_201_or_a_4xx_with_a_reason_and_a_refusal_writes_nothing(app_and_database, body):
    app, database = app_and_database
    before = database.audit()
    response = app.test_client().post("/register", data=body, content_type="application/json")
    assert response.status_code in (201, 400, 409), response.get_data()
    answer = response.get_json()
    after = database.audit()
    if response.status_code == 201:
        event("registered")
        assert after["users"] == before["users"] + 1
        [(email, phone)] = list(users_with_id(database, answer["id"]))
        assert well_formed(email, phone)                 # only what the rules allow reaches the table
        email.encode("utf-8")                            # storable anywhere: no lone surrogate
    else:
        assert isinstance(answer["error"], str) and answer["error"]
        assert after == before


def users_with_id(database: Database, user_id: int):
    with database.transaction() as db:
        return db.execute("SELECT email, phone FROM users WHERE id = ?", (user_id,)).fetchall()


@settings(max_examples=300, deadline=None)
@given(body=any_json)
def test_parse_user_accepts_only_well_formed_users(body):
    try:
        user = parse_user(body)
    except BadRequest as refused:
        assert str(refused)
        return
    assert isinstance(body, dict) and well_formed(body["email"], body["phone"])
    assert user.email == body["email"].lower() and user.phone == body["phone"]


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(alphabet=st.sampled_from(CHARS), max_size=50).map(
    lambda s: s.encode("utf-8", "surrogatepass")))
def test_parse_body_returns_json_or_bad_request(raw):
    try:
        parse_body(raw)
    except BadRequest:
        pass
