"""A slice of the property tests (tests/unit/test_realtime_delivery_properties.py) against the
server as a real process: over real sockets, any JSON or bytes sent over HTTP is answered with a
success or a 4xx with a JSON reason, any JSON frame over WebSocket with an ack or a close code for
bad input (1007, 1008, 1009), never a 500, a 1011 or a dropped socket; and a rejected request or
frame writes nothing."""
import json
import time
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from demos.realtime_delivery.clients import Closed, Http, Ws

from test_realtime_delivery_attacks import get, post, snapshot
from tests.unit.test_realtime_delivery_properties import any_json, messages, text

SLICE = settings(max_examples=25, deadline=None)


def test_http_sends_and_reads_on_the_running_server(realtime):
    server = realtime(env={"LONG_POLL_TIMEOUT": "0"})
    Http(server.url).create("general")
    base = f"{server.url}/api/conversations"

    @SLICE
    @given(body=st.one_of(messages.map(lambda m: json.dumps(m).encode()), any_json.map(lambda v: json.dumps(v).encode()),
                          st.binary(max_size=200)),
           query=st.dictionaries(st.sampled_from(["after", "timeout"]), text, max_size=2))
    def check(body, query):
        before = snapshot(server)
        status, answer = post(f"{base}/general/messages", body)
        assert status in (200, 201) or (400 <= status < 500 and isinstance(answer["error"], str)), (status, answer)
        if status >= 400:
            assert snapshot(server) == before
        query_string = urllib.parse.urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
        for endpoint in ("messages", "poll"):
            status, answer = get(f"{base}/general/{endpoint}?{query_string}")
            assert status == 200 or (400 <= status < 500 and isinstance(answer["error"], str)), (status, answer)

    check()
    assert not any(key.startswith("errors.5") for key in Http(server.url).stats())


def subscribed(server) -> Ws:
    ws = Ws(server.ws_url, "general", after=0, timeout_s=5)
    deadline = time.monotonic() + 10
    while ws.receive()["type"] != "subscribed":
        assert time.monotonic() < deadline
    return ws


def test_websocket_frames_on_the_running_server(realtime):
    server = realtime()
    Http(server.url).create("general")

    @SLICE
    @given(frame=st.one_of(messages.map(lambda m: {**m, "type": "send"}), any_json))
    def check(frame):
        before = snapshot(server)
        ws = subscribed(server)
        try:
            ws.send_json(frame)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                answer = ws.receive()
                if answer["type"] == "ack":
                    return
            raise AssertionError(f"neither an ack nor a close for {frame!r}")
        except Closed as closed:
            assert closed.code in (1007, 1008, 1009), (closed.code, closed.reason, frame)
            assert snapshot(server) == before
        finally:
            ws.close()

    check()
    stats = Http(server.url).stats()
    assert stats.get("ws_close.1011", 0) == 0, stats
