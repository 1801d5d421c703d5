"""The chapter's guarantee, on all four transports at once: a client that stays within the window gets
every message exactly once and in order, through a burst from several senders and through a
SIGKILL of the server; a client that fell behind the window is told so by a gap marker.

Each receiver is a careful client (it keeps N, the last number it has, and reconnects with it);
the record of what it received is compared with what the senders were acknowledged.
"""
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import websocket

from demos.realtime_delivery.clients import Http, Sse, Ws, next_after

TRANSPORTS = ("short_poll", "long_poll", "sse", "websocket")
FAST_CLIENTS = {"SSE_HEARTBEAT_S": "0.5", "LONG_POLL_TIMEOUT": "2"}
# What a careful client resumes after: the connection failed (refused, reset, cut off mid-answer,
# timed out). Not an HTTP error status (a 500 is a bug to report, not to retry) and not a close
# code the server chose.
RETRYABLE = (OSError, http.client.HTTPException, websocket.WebSocketConnectionClosedException,
             websocket.WebSocketTimeoutException)


def until(condition, timeout_s: float, what: str, interval_s: float = 0.01) -> None:
    """Wait for ``condition()``, failing with ``what`` after ``timeout_s``: no loop without a deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(interval_s)


class Receiver(threading.Thread):
    """Follows one conversation on one transport until it has ``target`` (or its deadline passes)."""

    def __init__(self, server, transport: str, conversation: str = "general", deadline_s: float = 40):
        super().__init__(name=f"receiver-{transport}", daemon=True)
        self.server, self.transport, self.conversation = server, transport, conversation
        self.http = Http(server.url, timeout_s=5)
        self.after = 0
        self.received: list[tuple[int, str]] = []
        self.gaps: list[int] = []
        self.failures: list[str] = []   # every broken connection, each followed by a resume from N
        self.fatal: Exception | None = None   # anything else: the receiver stops and the test fails
        self.target: int | None = None
        self.deadline = time.monotonic() + deadline_s

    def done(self) -> bool:
        return (self.target is not None and self.after >= self.target) or time.monotonic() > self.deadline

    def take(self, message: dict) -> None:
        self.received.append((message["seq"], message["body"]))
        self.after = message["seq"]

    def take_gap(self, first_seq: int) -> None:
        self.gaps.append(first_seq)
        self.after = first_seq - 1

    def run(self) -> None:
        follow = getattr(self, f"follow_{self.transport}")
        while not self.done():
            try:
                follow()
            except RETRYABLE as error:   # the server died or the connection broke: resume from N
                self.failures.append(repr(error))
                time.sleep(0.05)
            except Exception as error:   # an error answer, a close code, a bad frame: not to retry
                self.fatal = error
                return

    def take_answer(self, answer: dict) -> None:
        if answer["gap"]:
            self.take_gap(answer["first_seq"])
        for message in answer["messages"]:
            self.take(message)

    def follow_short_poll(self) -> None:
        self.take_answer(self.http.short_poll(self.conversation, self.after))
        time.sleep(0.02)

    def follow_long_poll(self) -> None:
        self.take_answer(self.http.long_poll(self.conversation, self.after))

    def follow_sse(self) -> None:
        stream = Sse(self.server.url, self.conversation, last_event_id=str(self.after), timeout_s=3)
        try:
            for event in stream.events(heartbeats=True):
                if event["event"] == "gap":
                    self.take_gap(event["data"]["first_seq"])
                elif event["event"] == "message":
                    self.take(event["data"])
                if self.done():
                    return
            raise ConnectionError("the stream ended")
        finally:
            stream.close()

    def follow_websocket(self) -> None:
        ws = Ws(self.server.ws_url, self.conversation, after=self.after, timeout_s=3)
        try:
            while not self.done():
                try:
                    frame = ws.receive()
                except websocket.WebSocketTimeoutException:
                    continue                      # idle: look at the clock and the target again
                if frame["type"] == "gap":
                    self.take_gap(frame["first_seq"])
                elif frame["type"] == "message":
                    self.take(frame)
        finally:
            ws.close()


def start_receivers(server, http: Http, transports=TRANSPORTS) -> list[Receiver]:
    receivers = [Receiver(server, transport) for transport in transports]
    for receiver in receivers:
        receiver.start()
    deadline = time.monotonic() + 10   # all connected and waiting: what follows is live delivery
    while not ((stats := http.stats()).get("ws_open", 0) >= 1 and stats.get("sse_streams", 0) >= 1
               and stats.get("long_polls_held", 0) >= 1):
        assert time.monotonic() < deadline, stats
        time.sleep(0.02)
    return receivers


def finish(receivers: list[Receiver], target: int) -> None:
    for receiver in receivers:
        receiver.target = target
    for receiver in receivers:
        receiver.join(timeout=max(0.0, receiver.deadline - time.monotonic()) + 5)
        assert not receiver.is_alive(), f"{receiver.transport} receiver stuck"
        assert receiver.fatal is None, f"{receiver.transport}: {receiver.fatal!r}"


def test_a_burst_from_several_senders_reaches_every_transport_exactly_once_in_order(realtime):
    server = realtime(env=FAST_CLIENTS)
    http = Http(server.url)
    http.create("general")
    receivers = start_receivers(server, http) + start_receivers(server, http, ("websocket", "sse"))
    acked: dict[int, str] = {}
    per_sender: dict[str, list[int]] = {}

    def http_sender(name: str) -> None:
        seqs = per_sender[name] = []
        for i in range(100):
            seq = Http(server.url).send("general", name, f"{name}-{i}")
            acked[seq] = f"{name}-{i}"
            seqs.append(seq)

    def ws_sender(name: str) -> None:
        ws = Ws(server.ws_url, "general", after=None)
        ws.send_json({"after": 0})
        for i in range(100):                                     # pipelined: no waiting for acks
            ws.send(name, f"{name}-{i}", id=str(i))
        seqs = per_sender[name] = []
        deadline = time.monotonic() + 30
        while len(seqs) < 100:
            assert time.monotonic() < deadline, f"only {len(seqs)} acks within 30 s"
            frame = ws.receive()
            if frame["type"] == "ack":
                assert frame["id"] == str(len(seqs))
                acked[frame["seq"]] = f"{name}-{frame['id']}"
                seqs.append(frame["seq"])
        ws.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(http_sender, f"h{n}") for n in range(4)] + [pool.submit(ws_sender, "w0")]
        for future in futures:
            future.result(timeout=60)
    sending_s = time.monotonic() - started
    assert sorted(acked) == list(range(1, 501))                  # each number handed out once
    for seqs in per_sender.values():
        assert seqs == sorted(seqs)                              # each sender's messages keep their order
    finish(receivers, 500)
    expected = [(seq, acked[seq]) for seq in range(1, 501)]
    for receiver in receivers:
        assert receiver.received == expected, (receiver.transport, len(receiver.received), receiver.failures[:3])
        assert receiver.gaps == [] and receiver.failures == [], (receiver.transport, receiver.failures[:3])
    print(f"500 messages from 5 senders in {sending_s:.2f} s, delivered to {len(receivers)} receivers")


def test_clients_resume_after_the_server_is_killed_and_restarted(realtime):
    server = realtime(env=FAST_CLIENTS)
    http = Http(server.url, timeout_s=2)
    http.create("general")
    receivers = start_receivers(server, http)
    acked: dict[int, str] = {}
    unacknowledged: list[str] = []
    stop_sending = threading.Event()

    def sender() -> None:   # keeps sending through the outage; a send without an answer is not acked
        i = 0
        while not stop_sending.is_set() and i < 2000:
            i += 1
            try:
                acked[http.send("general", "ann", f"m{i}")] = f"m{i}"
            except Exception:
                unacknowledged.append(f"m{i}")
                time.sleep(0.02)
            time.sleep(0.002)

    with ThreadPoolExecutor(max_workers=1) as pool:
        sending = pool.submit(sender)
        until(lambda: len(acked) >= 40 or sending.done(), 20, "40 messages acknowledged")
        server.kill()                                   # SIGKILL, in the middle of the traffic
        killed_at = len(acked)
        time.sleep(0.3)
        server.start()                                  # same ports, same data
        until(lambda: len(acked) >= killed_at + 40 or sending.done(), 20, "40 more after the restart")
        assert sending.running(), sending.exception()
        stop_sending.set()
        sending.result(timeout=10)
    stored = [(m["seq"], m["body"]) for m in http.short_poll("general", 0)["messages"]]
    assert [seq for seq, _ in stored] == list(range(1, len(stored) + 1))      # no hole, no repeat
    assert set(acked.items()) <= set(stored)                                   # nothing acknowledged was lost
    assert {body for _, body in stored} <= set(acked.values()) | set(unacknowledged)
    finish(receivers, len(stored))
    for receiver in receivers:
        assert receiver.received == stored, (receiver.transport, len(receiver.received), len(stored))
        assert receiver.gaps == []
        assert receiver.failures, f"{receiver.transport} never noticed the restart"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_behind_the_window_gets_a_gap_marker(realtime, transport):
    server = realtime(env={"WINDOW_LENGTH": "10", **FAST_CLIENTS})
    http = Http(server.url)
    http.create("general")
    for i in range(1, 26):
        http.send("general", "ann", f"m{i}")
    behind = Receiver(server, transport, deadline_s=10)
    behind.after = 2                      # it had 1 and 2; 3..15 are out of the window now
    behind.target = 25
    behind.run()
    assert behind.gaps == [16]
    assert [seq for seq, _ in behind.received] == list(range(16, 26))
    within = Receiver(server, transport, deadline_s=10)
    within.after, within.target = 15, 25  # 16 is the first kept: it misses nothing
    within.run()
    assert within.gaps == [] and [seq for seq, _ in within.received] == list(range(16, 26))


def test_next_after_follows_messages_and_gaps():
    assert next_after({"messages": [{"seq": 7}], "gap": False}, 3) == 7
    assert next_after({"messages": [], "gap": True, "first_seq": 16}, 2) == 15
    assert next_after({"messages": [], "gap": False}, 4) == 4


def send_many(server, count: int, start: int = 1, conversation: str = "general") -> None:
    """``count`` messages ``m<n>`` on one kept-alive connection (fast), each acknowledged in order."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for n in range(start, start + count):
            connection.request("POST", f"/api/conversations/{conversation}/messages",
                               json.dumps({"sender": "ann", "body": f"m{n}"}), {"Content-Type": "application/json"})
            answer = connection.getresponse()
            assert (answer.status, json.load(answer)["seq"]) == (201, n)
    finally:
        connection.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resuming_far_past_one_batch_and_behind_the_window(realtime, transport):
    """700 messages, the last 300 kept: more than one replay batch (100) and than the hub's memory
    (256) lie between where a client resumes and the last message; a live one follows."""
    server = realtime(env={"WINDOW_LENGTH": "300", **FAST_CLIENTS})
    Http(server.url).create("general")
    send_many(server, 700)
    receivers = []
    for resume_from in (420, 10, 0):                # within the window; behind it; from the start
        receiver = Receiver(server, transport, deadline_s=20)
        receiver.after = resume_from
        receiver.start()
        receivers.append(receiver)
    for receiver in receivers:
        until(lambda: receiver.after >= 700 or not receiver.is_alive(), 20, f"{transport} to catch up")
    send_many(server, 1, start=701)                 # and then live
    finish(receivers, 701)
    within, behind, fresh = receivers
    assert within.gaps == [] and [seq for seq, _ in within.received] == list(range(421, 702))
    for receiver in (behind, fresh):
        assert receiver.gaps == [401] and [seq for seq, _ in receiver.received] == list(range(401, 702))
    for receiver in receivers:
        assert [body for _, body in receiver.received] == [f"m{seq}" for seq, _ in receiver.received]
        assert receiver.failures == [], receiver.failures[:3]


class ResendingSender(threading.Thread):
    """Sends ``count`` messages, each with its own id, over HTTP or WebSocket; a message whose answer
    never came (the server died) is sent again, with the same id, until it is answered."""

    def __init__(self, server, name: str, transport: str, count: int, deadline_s: float = 40):
        super().__init__(name=f"sender-{name}", daemon=True)
        self.server, self.sender, self.transport, self.count = server, name, transport, count
        self.answered: dict[str, int] = {}   # id -> the seq the server answered
        self.attempts = 0                    # every send, resends included
        self.deadline = time.monotonic() + deadline_s
        self.error: Exception | None = None
        self.ws: Ws | None = None

    def run(self) -> None:
        try:
            for i in range(self.count):
                message_id = f"{self.sender}-{i}"
                while message_id not in self.answered:
                    assert time.monotonic() < self.deadline, f"{message_id} never answered"
                    self.attempts += 1
                    try:
                        self.answered[message_id] = self.send(message_id)
                    except RETRYABLE:
                        self.close()
                        time.sleep(0.05)
        except Exception as error:   # the test reports it
            self.error = error
        finally:
            self.close()

    def send(self, message_id: str) -> int:
        body = f"{self.sender} says {message_id}"
        if self.transport == "http":
            return Http(self.server.url, timeout_s=2).send("general", self.sender, body, id=message_id)
        if self.ws is None:
            self.ws = Ws(self.server.ws_url, "general", after=None, timeout_s=2)
            self.ws.send_json({"after": Http(self.server.url, timeout_s=2).short_poll("general", 0)["last_seq"]})
        self.ws.send(self.sender, body, id=message_id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:   # its own message and others' may come before the ack
            frame = self.ws.receive()
            if frame["type"] == "ack":
                assert frame["id"] == message_id, frame
                return frame["seq"]
        raise TimeoutError(f"no ack for {message_id} within 5 s")

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None


@pytest.mark.timeout(90)
def test_resent_messages_are_stored_once_through_a_sigkill(realtime):
    server = realtime(env=FAST_CLIENTS)
    http_client = Http(server.url, timeout_s=5)
    http_client.create("general")
    senders = [ResendingSender(server, f"s{n}", "http" if n % 2 else "websocket", 80) for n in range(6)]
    for sender in senders:
        sender.start()
    until(lambda: sum(len(s.answered) for s in senders) >= 120, 30, "120 messages answered")
    server.kill()                                    # SIGKILL, with sends in flight
    time.sleep(0.3)
    server.start()
    for sender in senders:
        sender.join(max(0.0, sender.deadline - time.monotonic()) + 5)
        assert not sender.is_alive() and sender.error is None, (sender.sender, sender.error)
    # one more resend of an answered message on each transport: the original number again
    for transport in ("http", "websocket"):
        sender = next(s for s in senders if s.transport == transport)
        again = ResendingSender(server, sender.sender, transport, 1)
        again.run()
        assert again.answered == {f"{sender.sender}-0": sender.answered[f"{sender.sender}-0"]}, transport
    stored = http_client.short_poll("general", 0)["messages"]
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
    bodies = [m["body"] for m in stored]
    expected = {f"{s.sender} says {message_id}": seq for s in senders for message_id, seq in s.answered.items()}
    assert sorted(bodies) == sorted(expected), "a message stored twice, or not at all"
    assert {m["body"]: m["seq"] for m in stored} == expected     # each answered with its own number
    resent = sum(s.attempts - s.count for s in senders)
    stats = http_client.stats()
    print(f"{len(stored)} messages from {len(senders)} senders, {resent} resent through a SIGKILL; "
          f"{stats.get('sends.repeated', 0)} resends answered from the store since the restart")
    assert resent >= 1
    assert stats.get("sends.repeated", 0) >= 2
