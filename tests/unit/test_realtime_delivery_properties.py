"""Property tests (Hypothesis) for every chapter 1 input parser and HTTP endpoint, in-process
through Flask's test client: whatever arrives (any JSON, any bytes, any query string, any path),
the answer is a success or a 4xx with a JSON reason, never a 500, and a rejected request changes
nothing in the store.

Text is drawn from a character list that holds lone surrogates ('\\ud800', '\\udfff'), control
characters and the edges of every pattern on purpose: Hypothesis's default text strategy almost
never draws a lone surrogate, and a trailing newline is what ``$`` lets through.
"""
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demos.realtime_delivery import inputs
from demos.realtime_delivery.app import create_app
from demos.realtime_delivery.hub import Hub
from demos.realtime_delivery.settings import Settings
from demos.realtime_delivery.store import Store

CHARACTERS = ["a", "Z", "0", "9", "-", "_", ".", ":", " ", "\n", "\t", "\r", "\x00", "\x1f", "\x7f", "\x9f",
              "\u00a0", "é", "✓", "\ud800", "\udfff", "\U0001f600", '"', "\\", "/", "[", "{", "%", "?", "#", "&", "="]
text = st.text(alphabet=st.sampled_from(CHARACTERS), max_size=70)
ids = st.one_of(st.sampled_from(["general", "k1", "a" * 64, "a" * 65, "general\n", " general", ""]), text)
numbers = st.one_of(st.integers(min_value=-2, max_value=10**19), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans())
scalars = st.one_of(st.none(), numbers, text)
any_json = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)), max_leaves=12)
messages = st.fixed_dictionaries({}, optional={
    "sender": st.one_of(st.sampled_from(["ann", "Ann Lee", "ann\n"]), text, numbers),
    "body": st.one_of(st.sampled_from(["hi", "x" * 4096, "x" * 4097]), text, numbers, st.none()),
    "client_ts": st.one_of(numbers, text, st.none()),
    "id": st.one_of(ids, numbers, st.none()),
    "type": text,
})
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def outcome(check, *args):
    """The clean value, or the BadInput's status; anything else raised fails the property."""
    try:
        return check(*args)
    except inputs.BadInput as problem:
        assert problem.status in (400, 413) and str(problem)
        return problem.status


@PROPERTY
@given(st.one_of(any_json, ids, numbers))
def test_every_parser_answers_a_value_or_bad_input(value):
    for check in (inputs.conversation_id, inputs.seq, inputs.client_id, inputs.sender, inputs.body,
                  inputs.client_ts, inputs.new_message):
        result = outcome(check, value)
        if check in (inputs.conversation_id, inputs.client_id, inputs.sender) and isinstance(result, str):
            assert result == value and result == result.strip() and "\n" not in result
            result.encode("utf-8")                                 # storable
    outcome(inputs.timeout, value, 90.0)


@PROPERTY
@given(st.binary(max_size=300) | any_json.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_parse_to_a_value_or_bad_input(data):
    outcome(inputs.json_value, data)
    outcome(inputs.new_conversation, data)
    outcome(inputs.send_request, data)


@pytest.fixture
def app_and_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'messages.db'}", window_length=50)
    hub = Hub(store)
    hub.create("general")
    hub.send("general", "ann", "kept", client_id="k1")
    app = create_app(hub, Settings(database_url="unused", long_poll_timeout_s=0.0, sse_heartbeat_s=0.1), ws_port=1)
    yield app.test_client(), store
    store.close()


def snapshot(store: Store) -> tuple:
    with store.lock:
        return tuple(store.db.execute(query).fetchall() for query in (
            "SELECT id, last_seq FROM conversations ORDER BY id",
            "SELECT conversation, seq, sender, body, client_ts FROM messages ORDER BY conversation, seq",
            "SELECT conversation, sender, client_id, seq FROM sends ORDER BY 1, 2, 3"))


def assert_answer(response, before, store, success=(200, 201)) -> None:
    """A success, or a 4xx with a JSON reason that changed nothing."""
    assert response.status_code in success or 400 <= response.status_code < 500, response.status_code
    if response.status_code >= 400:
        assert isinstance(response.get_json()["error"], str)
        assert snapshot(store) == before


@PROPERTY
@given(body=st.one_of(st.binary(max_size=200), any_json.map(lambda v: json.dumps(v).encode()),
                      st.fixed_dictionaries({"id": ids}).map(lambda v: json.dumps(v).encode())))
def test_creating_a_conversation(app_and_store, body):
    client, store = app_and_store
    before = snapshot(store)
    response = client.post("/api/conversations", data=body, content_type="application/json")
    assert_answer(response, before, store)
    if response.status_code in (200, 201):
        created = response.get_json()["id"]
        assert inputs.CONVERSATION_ID.fullmatch(created) and store.exists(created)


@PROPERTY
@given(message=st.one_of(messages, any_json), raw=st.booleans())
def test_sending_a_message(app_and_store, message, raw):
    client, store = app_and_store
    before = snapshot(store)
    data = json.dumps(message).encode() if not raw else json.dumps(message).encode()[:-1]   # raw: cut short
    response = client.post("/api/conversations/general/messages", data=data, content_type="application/json")
    assert_answer(response, before, store)
    after = snapshot(store)
    if response.status_code == 201:
        assert len(after[1]) == len(before[1]) + 1 and after[1][-1][1] == response.get_json()["seq"]
    elif response.status_code == 200:              # a resend: nothing new
        assert response.get_json()["repeated"] is True and after == before


@PROPERTY
@given(conversation=ids, query=st.dictionaries(st.sampled_from(["after", "timeout", "x"]), st.one_of(text, st.integers(-5, 10**20).map(str)), max_size=3),
       last_event_id=st.one_of(st.none(), st.sampled_from(["1", "0", "+1", "1 2"]), st.text(
           alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xff), max_size=20)))
def test_reading_on_every_transport(app_and_store, conversation, query, last_event_id):
    client, store = app_and_store
    before = snapshot(store)
    path = "/api/conversations/" + urllib.parse.quote(conversation.encode("utf-8", "surrogatepass"), safe="")
    query_string = urllib.parse.urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    for endpoint in ("/messages", "/poll"):
        assert_answer(client.get(f"{path}{endpoint}?{query_string}"), before, store, success=(200,))
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    response = client.get(f"{path}/events?{query_string}", headers=headers, buffered=False)
    try:
        assert_answer(response, before, store, success=(200,))
        if response.status_code == 200:
            assert response.mimetype == "text/event-stream"
    finally:
        response.close()
    assert snapshot(store) == before                                 # reading never writes


@PROPERTY
@given(conversation=ids, body=st.binary(max_size=100))
def test_sending_to_any_path(app_and_store, conversation, body):
    client, store = app_and_store
    before = snapshot(store)
    path = "/api/conversations/" + urllib.parse.quote(conversation.encode("utf-8", "surrogatepass"), safe="")
    response = client.post(f"{path}/messages", data=body, content_type="application/json")
    assert response.status_code in (400, 404, 405, 413) or (conversation == "general" and response.status_code < 300)
    assert_answer(response, before, store)


@PROPERTY
@given(st.lists(st.one_of(text, st.sampled_from(["", "data: x", "id: 7", "event: gap", "retry: 10", ": hb"])),
                max_size=12))
def test_the_sse_parser_takes_any_lines(lines):
    """The clients' SSE parser (the test client's and the load's): any line is taken, nothing raises,
    and whatever it dispatches has the shape the receivers read."""
    from demos.realtime_delivery.sse_parser import SseParser

    parser = SseParser()
    for line in lines:
        event = parser.feed(line)
        assert event is None or (set(event) == {"event", "id", "data"} and isinstance(event["event"], str))
    assert parser.retry_ms is None or parser.retry_ms >= 0
