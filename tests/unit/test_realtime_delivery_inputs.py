"""Chapter 1's input checks (demos.realtime_delivery.inputs) and the hub's in-memory tail.

Every boundary is tested on both sides (the last value accepted, the first refused), so that a
check loosened or tightened by one (as mutation testing tries) fails a test."""
import json

import pytest

from demos.realtime_delivery import inputs
from demos.realtime_delivery.hub import Hub
from demos.realtime_delivery.inputs import BadInput, NotJson
from demos.realtime_delivery.store import Store


def refused(check, *args) -> BadInput:
    with pytest.raises(BadInput) as problem:
        check(*args)
    return problem.value


@pytest.mark.parametrize("value, expected", [(None, 0), ("0", 0), ("42", 42), (7, 7), (0, 0),
                                             ("9" * 18, 10**18 - 1), (10**18 - 1, 10**18 - 1)])
def test_seq_accepts_non_negative_integers(value, expected):
    assert inputs.seq(value) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", " 3", "3 ", "3\n", "\n3", "+3", "٣", -1, 1.0, True,
                                   False, [], "9" * 19, 10**18, "1_0"])
def test_seq_rejects_everything_else(value):
    problem = refused(inputs.seq, value)
    assert problem.status == 400 and str(problem).startswith("after must be")
    assert str(refused(inputs.seq, value, "Last-Event-ID")).startswith("Last-Event-ID must be")


@pytest.mark.parametrize("value", ["", "a" * 65, "with space", "é", "a/b", None, 3, "general\n", "\ngeneral",
                                   " general", "general ", "gen\x00", "a.b", "\ud800"])
def test_conversation_ids(value):
    assert refused(inputs.conversation_id, value).status == 400


@pytest.mark.parametrize("value", ["Room_1-b", "a", "a" * 64, "-", "_", "0"])
def test_conversation_id_allows_letters_digits_dash_underscore(value):
    assert inputs.conversation_id(value) == value


def test_timeout_is_capped_and_checked():
    assert inputs.timeout(None, 90) == 90
    assert inputs.timeout("2.5", 90) == 2.5
    assert inputs.timeout("0", 90) == 0
    assert inputs.timeout("90", 90) == 90
    assert inputs.timeout("89.999999", 90) == 89.999999
    assert inputs.timeout("1000", 90) == 90
    assert inputs.timeout("999999.999999", 90) == 90
    for bad in ("-1", "x", "nan", "inf", "1_0", "1e3", " 1", "1\n", ".5", "1.", "1234567", "1.1234567", "", 5):
        problem = refused(inputs.timeout, bad, 90)
        assert problem.status == 400 and "from 0 to 90" in str(problem)


@pytest.mark.parametrize("value", ["a", "a" * 64, "A-z_0.9:x", "5f0c2a1e-3b4d-4c8e-9f00-123456789abc"])
def test_client_ids_accepted(value):
    assert inputs.client_id(value) == value


@pytest.mark.parametrize("value", ["", "a" * 65, "k1\n", " k1", "k1 ", "k 1", "k\x00", "é", "\ud800", 7, 1.5,
                                   True, ["k"], {"k": 1}])
def test_client_ids_refused(value):
    problem = refused(inputs.client_id, value)
    assert problem.status == 400 and str(problem).startswith("id, if given")


def test_no_client_id_is_none():
    assert inputs.client_id(None) is None


@pytest.mark.parametrize("value", ["ann", "a", "a" * 64, "Ann Lee", "Zoë", "a\u00a0b"])
def test_senders_accepted(value):
    assert inputs.sender(value) == value


@pytest.mark.parametrize("value", ["", " ", "a" * 65, " ann", "ann ", "ann\n", "\tann", "a\x00b", "a\x1fb", "a\x7fb",
                                   "a\x9fb", "\ud800", "a\udfff", None, 5, ["ann"]])
def test_senders_refused(value):
    problem = refused(inputs.sender, value)
    assert problem.status == 400


def test_a_surrogate_is_named_as_such():
    assert "lone surrogate" in str(refused(inputs.sender, "a\ud800"))
    assert "lone surrogate" in str(refused(inputs.body, "x\udfffx"))
    assert str(refused(inputs.sender, "a\x00")).startswith("sender must be 1 to 64 characters")


def test_bodies():
    assert inputs.body("x") == "x"
    assert inputs.body("x" * 4096) == "x" * 4096
    assert inputs.body("é" * 2048) == "é" * 2048                 # 4096 bytes
    assert inputs.body(" spaces and\nnewlines are fine ") == " spaces and\nnewlines are fine "
    assert refused(inputs.body, "x" * 4097).status == 413
    assert refused(inputs.body, "é" * 2048 + "x").status == 413
    for bad in ("", None, 5, ["x"], "\ud800"):
        assert refused(inputs.body, bad).status == 400
    assert refused(inputs.body, "\ud800" * 5000).status == 400  # not storable: 400 before its size


def test_client_ts():
    assert inputs.client_ts(None) is None
    assert inputs.client_ts(3) == 3.0 and isinstance(inputs.client_ts(3), float)
    assert inputs.client_ts(0) == 0.0
    assert inputs.client_ts(-1.5) == -1.5
    for bad in ("now", True, False, float("nan"), float("inf"), float("-inf"), 10**400, [1]):
        problem = refused(inputs.client_ts, bad)
        assert problem.status == 400 and str(problem).startswith("client_ts")


def test_new_message():
    assert inputs.new_message({"sender": "ann", "body": "hi", "client_ts": 3}) == inputs.NewMessage("ann", "hi", 3.0)
    assert inputs.new_message({"sender": "ann", "body": "x" * 4096}).body == "x" * 4096
    assert inputs.new_message({"sender": "ann", "body": "hi", "id": "k1"}) == inputs.NewMessage("ann", "hi", None, "k1")
    assert inputs.new_message({"sender": "ann", "body": "hi", "id": None}).client_id is None


@pytest.mark.parametrize("message, status", [
    (None, 400), ([], 400), ({"body": "hi"}, 400), ({"sender": " ", "body": "hi"}, 400),
    ({"sender": "a" * 65, "body": "hi"}, 400), ({"sender": "ann"}, 400), ({"sender": "ann", "body": ""}, 400),
    ({"sender": "ann", "body": 5}, 400), ({"sender": "ann", "body": "hi", "client_ts": "now"}, 400),
    ({"sender": "ann", "body": "hi", "client_ts": True}, 400),
    ({"sender": "ann", "body": "hi", "client_ts": float("nan")}, 400),
    ({"sender": "ann", "body": "x" * 4097}, 413), ({"sender": "ann", "body": "é" * 2049}, 413),
    ({"sender": "ann", "body": "hi", "id": "k1\n"}, 400), ({"sender": "ann\n", "body": "hi"}, 400),
])
def test_new_message_rejects(message, status):
    assert refused(inputs.new_message, message).status == status


def test_json_depth():
    assert inputs.json_depth_ok("[" * 32 + "]" * 32)
    assert not inputs.json_depth_ok("[" * 33 + "]" * 33)
    assert inputs.json_depth_ok('{"a":' * 32 + "1" + "}" * 32)
    assert not inputs.json_depth_ok('{"a":' * 33 + "1" + "}" * 33)
    assert inputs.json_depth_ok("[" * 20 + "]" * 20 + "[" * 20 + "]" * 20)     # siblings, not nested
    assert inputs.json_depth_ok('["' + "[" * 100 + '"]')                       # inside a string
    assert inputs.json_depth_ok('["\\"' + "[" * 100 + '"]')                    # past an escaped quote
    assert inputs.json_depth_ok('["\\\\", ' + "[" * 31 + "]" * 31 + "]")       # an escaped backslash ends
    assert not inputs.json_depth_ok('["\\\\", ' + "[" * 32 + "]" * 32 + "]")
    assert inputs.json_depth_ok("[" * 3, limit=3) and not inputs.json_depth_ok("[" * 4, limit=3)
    assert not inputs.json_depth_ok("[[]" * 33)                                 # closing one of two: depth 33
    assert inputs.json_depth_ok("[[]" * 31 + "]" * 31)
    assert inputs.json_depth_ok("X" * 40) and not inputs.json_depth_ok("XX" + "[" * 33)   # only brackets count


def test_json_value():
    assert inputs.json_value(b'{"a": [1, "\\u00e9"]}') == {"a": [1, "é"]}
    assert inputs.json_value(json.dumps([[[1]]]).encode()) == [[[1]]]
    assert inputs.json_value(b'"\\ud800"') == "\ud800"                # decoded; the field checks refuse it
    for not_json in (b"{oops", b"", b"\xff\xfe", b"[1, 2", b'{"a": 1} x'):
        problem = refused(inputs.json_value, not_json)
        assert isinstance(problem, NotJson) and problem.status == 400
    for deep in (b"[" * 2000 + b"]" * 2000, b"[" * 30000 + b"]" * 30000, b'{"a":' * 20000 + b"1" + b"}" * 20000):
        problem = refused(inputs.json_value, deep)
        assert not isinstance(problem, NotJson) and "nested deeper than 32" in str(problem)


def test_json_object_and_the_request_bodies():
    assert inputs.json_object(b'{"id": "x"}', "E") == {"id": "x"}
    problem = refused(inputs.json_object, b"[1]", "{E}")
    assert str(problem) == "send a JSON object like {E}" and not isinstance(problem, NotJson)
    problem = refused(inputs.json_object, b"{oops", "{E}")
    assert isinstance(problem, NotJson) and str(problem).endswith("; send a JSON object like {E}")
    assert inputs.new_conversation(b'{"id": "general"}') == "general"
    for bad in (b'{"id": "general\\n"}', b'{"id": "\\ud800"}', b"{}", b'"general"', b"[" * 5000):
        assert refused(inputs.new_conversation, bad).status == 400
    assert inputs.send_request(b'{"sender": "ann", "body": "hi", "id": "k"}') == inputs.NewMessage("ann", "hi", None, "k")
    assert refused(inputs.send_request, b'{"sender": "ann", "body": "\\ud800"}').status == 400
    assert refused(inputs.send_request, b'{"sender": "ann", "body": "' + b"x" * 4097 + b'"}').status == 413


def test_hub_serves_from_memory_exactly_what_the_store_holds(tmp_path):
    """The hub answers recent reads from memory: for every N it must agree with the store."""
    store = Store(f"sqlite:///{tmp_path / 'm.db'}", window_length=300)
    hub = Hub(store)
    hub.create("general")
    for i in range(400):
        hub.send("general", "ann", f"m{i}")
    for after in range(0, 401):
        for limit in (None, 7):
            assert hub.after("general", after, limit) == store.read_after("general", after, limit), (after, limit)
