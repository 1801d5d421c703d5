"""Chapter 1's server as a real process, attacked the way a hostile or broken client would: every
bad input gets a 4xx with a JSON reason (or a WebSocket close code), never a 500, and writes
nothing; floods of pings are bounded; a client that resets mid-replay is written to no more.
"""
import base64
import json
import os
import socket
import sqlite3
import struct
import threading
import time
import urllib.parse
import urllib.request
from http.client import HTTPConnection

import psutil
import pytest
import websocket
from websockets.frames import Frame, Opcode

from demos.realtime_delivery.clients import Closed, Http, Ws
from load.harness import wait_for

SURROGATE_BODIES = [   # JSON escapes that decode to a lone surrogate: no database stores one
    b'{"sender": "ann", "body": "\\ud800"}',
    b'{"sender": "\\udfff", "body": "hi"}',
    b'{"sender": "ann", "body": "hi", "id": "\\ud800"}',
    b'{"sender": "ann", "body": "ok \\udc00 ok"}',
]
DEEP = [b"[" * 2000 + b"]" * 2000, b"[" * 30000 + b"]" * 30000, b'{"a":' * 20000 + b"1" + b"}" * 20000]
BAD_IDS = ["general\n", " general", "general ", "gen\x00eral", "gen\teral", "général", "\ud800"]


def snapshot(server) -> tuple:
    """Everything the server stored, read from its SQLite file."""
    db = sqlite3.connect(f"file:{server.folder / 'data' / 'messages.db'}?mode=ro", uri=True)
    try:
        return (db.execute("SELECT id, last_seq FROM conversations ORDER BY id").fetchall(),
                db.execute("SELECT conversation, seq, sender, body FROM messages ORDER BY conversation, seq").fetchall(),
                db.execute("SELECT * FROM sends ORDER BY conversation, sender, client_id").fetchall())
    finally:
        db.close()


def post(url: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, (json.load(response) if "json" in response.headers["Content-Type"] else {})
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def quoted(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


def test_bad_input_over_http_is_a_4xx_with_a_reason_and_writes_nothing(realtime):
    server = realtime()
    http = Http(server.url)
    http.create("general")
    http.send("general", "ann", "kept", id="k1")
    before = snapshot(server)
    base = f"{server.url}/api/conversations"
    answers = [post(f"{base}/general/messages", data) for data in SURROGATE_BODIES + DEEP]
    answers += [post(base, json.dumps({"id": bad}).encode()) for bad in BAD_IDS]
    answers += [post(base, b'{"id": "\\ud800"}'), post(base, b'{"id": "general\\n"}')]
    for bad in BAD_IDS[:-1]:
        answers += [post(f"{base}/{quoted(bad)}/messages", b'{"sender": "ann", "body": "x"}'),
                    get(f"{base}/{quoted(bad)}/messages?after=0")]
    answers += [post(f"{base}/general/messages", json.dumps({"sender": sender, "body": "x"}).encode())
                for sender in ("ann\n", " ann", "ann\x00", "a\x1bnn", "")]
    answers += [post(f"{base}/general/messages", json.dumps({"sender": "ann", "body": "x", "id": bad}).encode())
                for bad in ("k1\n", "", " k1", "x" * 65, 7, ["k1"], "k 1")]
    answers += [post(f"{base}/general/messages", b'{"sender": "ann", "body": "x", "client_ts": 1' + b"0" * 400 + b"}")]
    for query in ("after=1%0A", "after=%201", "after=1%00", "after=" + "9" * 30):
        answers += [get(f"{base}/general/poll?{query}"), get(f"{base}/general/messages?{query}")]
    for query in ("timeout=1_0", "timeout=inf", "timeout=%0A1", "timeout=-1", "timeout=1e3"):
        answers += [get(f"{base}/general/poll?after=1&{query}")]
    answers += [get(f"{base}/general/events", {"Last-Event-ID": "+1"}), get(f"{base}/general/events", {"Last-Event-ID": "1 2"})]
    for status, answer in answers:
        assert 400 <= status < 500 and isinstance(answer.get("error"), str), (status, answer, answers.index((status, answer)))
    assert snapshot(server) == before
    assert not any(key.startswith("errors.5") for key in http.stats())


def handshake(port: int, conversation: str = "general") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws/{conversation} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    return sock


def close_code_for(server, *frames) -> int:
    """Send ``frames`` (dicts as JSON, bytes as a text frame as they are); the server's close code."""
    ws = Ws(server.ws_url, "general", after=None, timeout_s=5)
    try:
        for frame in frames:
            ws.send_raw(frame) if isinstance(frame, (bytes, str)) else ws.send_json(frame)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ws.receive()
        pytest.fail(f"not closed: {frames}")
    except Closed as closed:
        return closed.code
    finally:
        ws.close()


def test_websocket_frames_that_fail_a_check_get_a_close_frame_and_write_nothing(realtime):
    server = realtime()
    http = Http(server.url)
    http.create("general")
    http.send("general", "ann", "kept", id="k1")
    before = snapshot(server)
    hello = {"after": 0}
    cases = [
        ((hello, '{"type": "send", "sender": "ann", "body": "\\ud800"}'), 1008),
        ((hello, '{"type": "send", "sender": "\\udfff", "body": "hi"}'), 1008),
        ((hello, '{"type": "send", "sender": "ann", "body": "hi", "id": "\\ud800"}'), 1008),
        ((hello, {"type": "send", "sender": "ann", "body": "hi", "id": "k1\n"}), 1008),
        ((hello, {"type": "send", "sender": "ann\n", "body": "hi"}), 1008),
        ((hello, {"type": "send", "sender": "ann", "body": "hi", "client_ts": "soon"}), 1008),
        (("[" * 2000 + "]" * 2000,), 1008),
        ((hello, "[" * 10000 + "]" * 10000), 1008),
        (('{"after": "1\\n"}',), 1008),
        (('{"after": "\\ud800"}',), 1008),
        (('{"after": 1e400}',), 1008),
    ]
    codes = [close_code_for(server, *frames) for frames, _ in cases]
    assert codes == [expected for _, expected in cases]
    for path in ("/ws/general/more", "/ws/general.", "/ws//general", "/wsx/general", "/ws/" + "a" * 65):
        with pytest.raises(websocket.WebSocketBadStatusException) as rejected:
            websocket.create_connection(server.ws_url + path, timeout=5)
        assert rejected.value.status_code == 404, path
    assert snapshot(server) == before
    stats = http.stats()
    assert stats.get("ws_close.1011", 0) == 0 and stats["ws_close.1008"] == len(cases), stats


def read_close_code(sock: socket.socket, deadline_s: float = 10) -> int:
    """Read until the server's close frame; its code (0 if the socket ended without one)."""
    data, deadline = b"", time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        while len(data) >= 2:
            length, start = data[1] & 0x7F, 2
            if length == 126:
                length, start = struct.unpack("!H", data[2:4])[0], 4
            elif length == 127:
                length, start = struct.unpack("!Q", data[2:10])[0], 10
            if len(data) < start + length:
                break
            if data[0] & 0x0F == 0x8:
                return struct.unpack("!H", data[start:start + 2])[0]
            data = data[start + length:]
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return 0
        if not chunk:
            return 0
        data += chunk
    pytest.fail("no close frame within the deadline")


def health_ms(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


@pytest.mark.parametrize("reads", [False, True], ids=["never-reads", "reads"])
def test_a_ping_flood_is_closed_and_health_keeps_answering(realtime, reads):
    server = realtime()
    Http(server.url).create("general")
    process = psutil.Process(server.service.process.pid)
    rss_before = process.memory_info().rss
    flooder = handshake(server.ws_port)
    flooder.sendall(Frame(Opcode.TEXT, b'{"after": 0}').serialize(mask=True))
    answer, deadline = b"", time.monotonic() + 10
    while b"subscribed" not in answer:
        assert time.monotonic() < deadline, answer
        answer += flooder.recv(4096)
    pings = b"".join(Frame(Opcode.PING, b"p" * 100).serialize(mask=True) for _ in range(500))
    sent, stop = [0], threading.Event()

    def flood() -> None:
        deadline = time.monotonic() + 4
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                flooder.sendall(pings)
            except OSError:     # closed by the server: what we want
                return
            sent[0] += len(pings)

    threading.Thread(target=flood, daemon=True).start()
    worst = max(health_ms(server.url) for _ in range(10) if not time.sleep(0.05))
    code = read_close_code(flooder) if reads else None
    stop.set()
    stats = wait_for(lambda: (lambda s: s if s.get("ws_open") == 0 else None)(Http(server.url).stats()), 10,
                     "the flooder's connection to end")
    flooder.close()
    assert stats.get("ws_close.1008", 0) + stats.get("ws_close.1013", 0) == 1, stats
    if reads:
        assert code in (1008, 1013)
    assert worst < 100, f"/health took {worst:.0f} ms during the flood"
    grown = process.memory_info().rss - rss_before
    print(f"ping flood ({'reading' if reads else 'never reading'}): {sent[0] / 1e6:.1f} MB sent, "
          f"/health at worst {worst:.1f} ms, server RSS +{grown / 1e6:.1f} MB")
    assert grown < 20e6, grown


@pytest.mark.timeout(90)
def test_clients_that_reset_mid_replay_are_not_written_to_any_more(realtime):
    clients, messages = 100, 1000
    server = realtime(env={"WINDOW_LENGTH": str(messages)})
    http = Http(server.url)
    http.create("general")
    body = "x" * 1000
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    for n in range(messages):
        connection.request("POST", "/api/conversations/general/messages",
                           json.dumps({"sender": "ann", "body": f"{n:04d}{body}"}), {"Content-Type": "application/json"})
        assert connection.getresponse().read()
    connection.close()
    before = http.stats().get("deliveries.websocket", 0)
    hello = Frame(Opcode.TEXT, b'{"after": 0}').serialize(mask=True)
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.ws_port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET /ws/general HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode() + hello)
        received, deadline = b"", time.monotonic() + 10
        while b'"seq":1,' not in received:      # the replay has begun
            assert time.monotonic() < deadline, "the replay never began"
            received += sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()                             # RST: gone without a goodbye
    stats = wait_for(lambda: (lambda s: s if s.get("ws_open") == 0 else None)(http.stats()), 20,
                     "every reset connection to end")
    delivered = stats.get("deliveries.websocket", 0) - before
    per_client = delivered / clients
    print(f"{clients} clients asked for {messages} messages each and reset: {delivered} deliveries "
          f"({per_client:.0f} a client), server CPU {stats['process.cpu_s']:.2f} s in all")
    assert per_client < messages / 2, f"{per_client:.0f} deliveries a client to sockets already reset"
