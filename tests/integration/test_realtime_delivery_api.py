"""Chapter 1's server as a real process: the API as documented, and bad input answered clearly
(a JSON error or a WebSocket close code, never a 500 or a hang) while other clients carry on."""
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import websocket

from demos.realtime_delivery.clients import Closed, Http, Sse, Ws
from load.harness import wait_for




def test_conversations_messages_short_poll_and_config(realtime):
    server = realtime()
    http = Http(server.url)
    assert http.request("POST", "/api/conversations", {"id": "general"}) == (201, {"id": "general", "created": True})
    assert http.request("POST", "/api/conversations", {"id": "general"}) == (200, {"id": "general", "created": False})
    assert http.short_poll("general", 0) == {"messages": [], "last_seq": 0, "gap": False, "first_seq": None}
    status, sent = http.request("POST", "/api/conversations/general/messages",
                                {"sender": "ann", "body": "hello", "client_ts": 123.5})
    assert status == 201 and sent["seq"] == 1 and abs(sent["sent_at"] - time.time()) < 60
    assert http.send("general", "bob", "héllo ✓") == 2
    answer = http.short_poll("general", 0)
    assert answer["messages"] == [
        {"seq": 1, "sender": "ann", "body": "hello", "sent_at": sent["sent_at"], "client_ts": 123.5},
        {"seq": 2, "sender": "bob", "body": "héllo ✓", "sent_at": answer["messages"][1]["sent_at"], "client_ts": None},
    ]
    assert (answer["last_seq"], answer["gap"], answer["first_seq"]) == (2, False, None)
    assert http.short_poll("general", 2)["messages"] == []
    config = http.call("GET", "/api/config")
    assert config["ws_port"] == server.ws_port and config["ws_path"] == "/ws/{conversation}"
    with urllib.request.urlopen(server.url + "/", timeout=5) as page:
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    stats = http.stats()
    assert stats["messages_stored"] == 2 and stats["deliveries.short_poll"] == 2


def http_call(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    """GET (or POST ``data`` as JSON); the status and the JSON body, errors included."""
    headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
    request = urllib.request.Request(url, data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def raw_post(url: str, data: bytes) -> tuple[int, dict]:
    return http_call(url, data)


def http_get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    return http_call(url, headers=headers)


def close_code(server, path: str, *frames) -> int:
    """Connect to ``path``, send ``frames`` ((data, opcode) or dicts), return the server's close code."""
    ws = Ws(server.ws_url, path, after=None, timeout_s=5)
    try:
        for frame in frames:
            if isinstance(frame, tuple):
                ws.send_raw(*frame)
            else:
                ws.send_json(frame)
        while True:
            ws.receive()
    except Closed as closed:
        return closed.code
    finally:
        ws.close()


def test_bad_input_gets_clear_errors_and_other_clients_keep_working(realtime):
    server = realtime()
    http = Http(server.url)
    http.create("general")
    http.send("general", "ann", "before")
    # clients already connected, each waiting for the next message
    ws = Ws(server.ws_url, "general", after=1)
    assert ws.receive() == {"type": "subscribed", "last_seq": 1}
    sse = Sse(server.url, "general", after=1)
    sse_events = sse.events()
    pool = ThreadPoolExecutor(max_workers=1)
    held = pool.submit(http.long_poll, "general", 1, 20)
    wait_for(lambda: http.stats().get("long_polls_held") == 1, 5, "the long poll to be held")

    base = f"{server.url}/api/conversations"
    text = websocket.ABNF.OPCODE_TEXT
    http_cases = [
        (raw_post(f"{base}/nope/messages", b'{"sender": "a", "body": "b"}'), 404),
        (http_get(f"{base}/nope/messages?after=0"), 404),
        (http_get(f"{base}/nope/poll?after=0"), 404),
        (http_get(f"{base}/nope/events?after=0"), 404),
        (http_get(f"{base}/general/messages?after=abc"), 400),
        (http_get(f"{base}/general/messages?after=-1"), 400),
        (http_get(f"{base}/general/messages?after=99"), 400),       # beyond the last message
        (http_get(f"{base}/general/poll?after=1.5"), 400),
        (http_get(f"{base}/general/poll?after=1&timeout=soon"), 400),
        (http_get(f"{base}/general/events?after=-3"), 400),
        (http_get(f"{base}/general/events", {"Last-Event-ID": "junk"}), 400),
        (raw_post(f"{base}/general/messages", b"{not json"), 400),
        (raw_post(f"{base}/general/messages", b'{"sender": "ann"}'), 400),
        (raw_post(f"{base}/general/messages", json.dumps({"sender": "a", "body": "x" * 5000}).encode()), 413),
        (raw_post(f"{base}/general/messages", b"x" * 100_000), 413),
        (raw_post(base, b'{"id": "no spaces"}'), 400),
        (raw_post(base, b"[1, 2"), 400),
    ]
    for (status, body), expected in http_cases:
        assert status == expected and isinstance(body.get("error"), str), (status, body)
    ws_cases = [
        (close_code(server, "nope", {"after": 0}), 1008),                          # unknown conversation
        (close_code(server, "general", ("{oops", text)), 1007),                     # malformed JSON
        (close_code(server, "general", (b"\xff\xfe", text)), 1007),                 # not UTF-8
        (close_code(server, "general", ("x" * 70_000, text)), 1009),                # frame too big
        (close_code(server, "general", {"after": -1}), 1008),
        (close_code(server, "general", {"after": "x"}), 1008),
        (close_code(server, "general", {"after": 99}), 1008),                       # beyond the last message
        (close_code(server, "general", [1, 2]), 1008),
        (close_code(server, "general", {"type": "send", "sender": "a", "body": "b"}), 1008),   # no {"after"} first
        (close_code(server, "general", {"after": 0}, {"type": "send", "sender": "a", "body": "x" * 5000}), 1009),
        (close_code(server, "general", {"after": 0}, {"type": "shout"}), 1008),
        (close_code(server, "general", (b"\x00\x01", websocket.ABNF.OPCODE_BINARY)), 1003),
    ]
    assert [code for code, _ in ws_cases] == [expected for _, expected in ws_cases]
    with pytest.raises(websocket.WebSocketBadStatusException) as rejected:
        websocket.create_connection(f"{server.ws_url}/elsewhere", timeout=5)
    assert rejected.value.status_code == 404

    # everyone who was waiting still gets the next message
    assert http.send("general", "ann", "after") == 2
    assert [m["body"] for m in held.result(timeout=5)["messages"]] == ["after"]
    assert next(e for e in sse_events if e["event"] == "message")["data"]["body"] == "after"
    assert ws.receive()["body"] == "after"
    stats = http.stats()
    assert not any(key.startswith("errors.5") for key in stats), stats
    ws.close(), sse.close(), pool.shutdown()


def test_a_silent_websocket_client_is_closed_after_the_hello_timeout(realtime):
    server = realtime(env={"WS_HELLO_TIMEOUT_S": "0.5"})
    Http(server.url).create("general")
    started = time.monotonic()
    assert close_code(server, "general") == 1008
    assert time.monotonic() - started < 3
