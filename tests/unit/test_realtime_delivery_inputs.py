"""Chapter 1's input checks (demos.realtime_delivery.inputs) and the hub's in-memory tail."""
import pytest

from demos.realtime_delivery import inputs
from demos.realtime_delivery.hub import Hub
from demos.realtime_delivery.inputs import BadInput
from demos.realtime_delivery.store import Store


@pytest.mark.parametrize("value, expected", [(None, 0), ("0", 0), ("42", 42), (7, 7)])
def test_seq_accepts_non_negative_integers(value, expected):
    assert inputs.seq(value) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", " 3", -1, 1.0, True, [], "9" * 19])
def test_seq_rejects_everything_else(value):
    with pytest.raises(BadInput) as problem:
        inputs.seq(value)
    assert problem.value.status == 400


@pytest.mark.parametrize("value", ["", "a" * 65, "with space", "é", "a/b", None, 3])
def test_conversation_ids(value):
    with pytest.raises(BadInput):
        inputs.conversation_id(value)


def test_conversation_id_allows_letters_digits_dash_underscore():
    assert inputs.conversation_id("Room_1-b") == "Room_1-b"


def test_timeout_is_capped_and_checked():
    assert inputs.timeout(None, 90) == 90
    assert inputs.timeout("2.5", 90) == 2.5
    assert inputs.timeout("1000", 90) == 90
    for bad in ("-1", "x", "nan", "inf"):
        with pytest.raises(BadInput):
            inputs.timeout(bad, 90)


def test_new_message():
    assert inputs.new_message({"sender": "ann", "body": "hi", "client_ts": 3}) == inputs.NewMessage("ann", "hi", 3.0)
    assert inputs.new_message({"sender": "ann", "body": "x" * 4096}).body == "x" * 4096


@pytest.mark.parametrize("message, status", [
    (None, 400), ([], 400), ({"body": "hi"}, 400), ({"sender": " ", "body": "hi"}, 400),
    ({"sender": "a" * 65, "body": "hi"}, 400), ({"sender": "ann"}, 400), ({"sender": "ann", "body": ""}, 400),
    ({"sender": "ann", "body": 5}, 400), ({"sender": "ann", "body": "hi", "client_ts": "now"}, 400),
    ({"sender": "ann", "body": "hi", "client_ts": True}, 400),
    ({"sender": "ann", "body": "hi", "client_ts": float("nan")}, 400),
    ({"sender": "ann", "body": "x" * 4097}, 413), ({"sender": "ann", "body": "é" * 2049}, 413),
])
def test_new_message_rejects(message, status):
    with pytest.raises(BadInput) as problem:
        inputs.new_message(message)
    assert problem.value.status == status


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
