"""WebSocket: replay from N then push, acknowledged sends, resuming after a drop, a slow client cut
off with 1013 without growing the server, and what an idle connection costs."""
import base64
import json
import os
import socket
import time
from http.client import HTTPConnection

import psutil

from demos.realtime_delivery.clients import Closed, Http, Ws


def test_replay_then_push_and_acknowledged_sends(realtime):
    server = realtime()
    http = Http(server.url)
    http.create("general")
    http.send("general", "ann", "m1")
    http.send("general", "ann", "m2")
    ws = Ws(server.ws_url, "general", after=1)
    replayed = ws.receive()
    assert {k: replayed[k] for k in ("type", "seq", "sender", "body", "client_ts")} == \
        {"type": "message", "seq": 2, "sender": "ann", "body": "m2", "client_ts": None}
    assert ws.receive() == {"type": "subscribed", "last_seq": 2}
    http.send("general", "bob", "m3")
    assert ws.receive()["body"] == "m3"                       # pushed
    ws.send("carl", "m4", client_ts=99.5, id="c-1")
    pushed, ack = ws.receive(), ws.receive()                  # its own message comes back, then the ack
    assert (pushed["seq"], pushed["sender"], pushed["client_ts"]) == (4, "carl", 99.5)
    assert ack == {"type": "ack", "seq": 4, "id": "c-1"}
    assert [m["body"] for m in http.short_poll("general", 0)["messages"]] == ["m1", "m2", "m3", "m4"]
    ws.close()


def test_a_dropped_websocket_resumes_from_its_last_seq(realtime):
    server = realtime()
    http = Http(server.url)
    http.create("general")
    ws = Ws(server.ws_url, "general", after=0)
    assert ws.receive()["type"] == "subscribed"
    http.send("general", "ann", "m1")
    last = ws.receive()["seq"]
    ws.ws.sock.shutdown(socket.SHUT_RDWR)     # the network drops: no close handshake
    ws.ws.sock.close()
    for body in ("m2", "m3"):
        http.send("general", "ann", body)
    again = Ws(server.ws_url, "general", after=last)
    assert [again.receive()["body"] for _ in range(2)] == ["m2", "m3"]
    assert again.receive() == {"type": "subscribed", "last_seq": 3}
    http.send("general", "ann", "m4")
    assert again.receive()["seq"] == 4
    again.close()


def test_a_slow_client_is_closed_with_1013_and_the_server_does_not_grow(realtime):
    cap = 64 * 1024
    server = realtime(env={"WS_MAX_PENDING_BYTES": str(cap)})
    http = Http(server.url)
    http.create("general")
    slow = Ws(server.ws_url, "general", after=0, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    fast = Ws(server.ws_url, "general", after=0)
    assert slow.receive()["type"] == fast.receive()["type"] == "subscribed"
    sender = HTTPConnection("127.0.0.1", server.port, timeout=10)   # one kept-alive connection: fast
    sent = 0
    while sent < 3000:                        # the slow client reads nothing meanwhile
        sent += 1
        sender.request("POST", "/api/conversations/general/messages",
                       json.dumps({"sender": "ann", "body": f"{sent:05d}" + "x" * 3995}))
        assert json.load(sender.getresponse())["seq"] == sent
        if sent % 50 == 0 and http.stats().get("ws_closed_slow"):
            break
    sender.close()
    stats = http.stats()
    assert stats.get("ws_closed_slow") == 1, f"still not closed after {sent} messages of 4 KB"
    # what the server held for its clients never passed the cap (plus the fast client's frame or two)
    assert stats["ws_pending_bytes_peak"] <= cap + 16 * 1024, stats
    # the slow client reads what reached it, then the close code, and resumes from its N
    last, deadline = 0, time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            last = slow.receive()["seq"]
        raise AssertionError("the slow client was never sent its close frame")
    except Closed as closed:
        assert closed.code == 1013
    assert 0 < last < sent
    resumed = Ws(server.ws_url, "general", after=last)
    seqs = []
    while (frame := resumed.receive())["type"] != "subscribed":
        seqs.append(frame["seq"])
        assert len(seqs) <= sent, "more messages than were sent"
    assert seqs == list(range(last + 1, sent + 1))
    # the fast client never noticed
    assert [fast.receive()["seq"] for _ in range(sent)] == list(range(1, sent + 1))
    resumed.close(), fast.close(), slow.close()


def open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` subscribed, idle WebSocket connections, each a bare socket (the least a client costs)."""
    hello = json.dumps({"after": 0}).encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | len(hello)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(hello))
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET /ws/general HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode() + frame)
        sockets.append(sock)
    deadline = time.monotonic() + 30
    for sock in sockets:
        received = b""
        while b"subscribed" not in received:
            assert time.monotonic() < deadline, "not subscribed within 30 s"
            received += sock.recv(4096)
        assert b"permessage-deflate" not in received
    return sockets


def test_an_idle_websocket_costs_one_descriptor_and_under_20_kib(realtime):
    server = realtime()
    Http(server.url).create("general")
    process = psutil.Process(server.service.process.pid)
    for sock in open_idle(server.ws_port, 200):     # warm up: pools and caches grow once
        sock.close()
    time.sleep(0.3)
    rss, fds = process.memory_info().rss, process.num_fds()
    clients = open_idle(server.ws_port, 1000)
    time.sleep(0.3)
    per_connection = (process.memory_info().rss - rss) / 1000
    assert process.num_fds() - fds == 1000
    assert Http(server.url).stats()["ws_open"] == 1000
    print(f"idle WebSocket: {per_connection / 1024:.1f} KiB and 1 descriptor per connection")
    assert per_connection < 20 * 1024, per_connection
    for sock in clients:
        sock.close()
