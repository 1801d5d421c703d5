"""Chapter 1's server as several processes: one SQLite file, one BROKER_URL, real Redis (and once
RabbitMQ). A client on one process gets every message sent to any process exactly once and in
order: through a concurrent burst, through a SIGKILL of the process it was sent to, and when a
doorbell never rings (the once-a-second safety net reads the store). ``--processes N`` forks
workers that share the ports; bad set-ups fail at once, saying what to do.
"""
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import websocket

from demos.realtime_delivery.clients import Http, Ws, next_after
from demos.realtime_delivery.store import Store
from load.harness import ROOT, wait_for
from load.servers import free_port

FAST_CLIENTS = {"LONG_POLL_TIMEOUT": "2", "SSE_HEARTBEAT_S": "1"}


class Follower(threading.Thread):
    """Follows one conversation on one server over WebSocket or long polling, recording
    ``(seq, body)``, until it has ``target`` or its deadline passes."""

    def __init__(self, server, transport: str, conversation: str = "general", deadline_s: float = 20):
        super().__init__(name=f"follower-{transport}", daemon=True)
        self.server, self.transport, self.conversation = server, transport, conversation
        self.received: list[tuple[int, str]] = []
        self.target: int | None = None
        self.ready = threading.Event()
        self.deadline = time.monotonic() + deadline_s
        self.error: Exception | None = None

    def done(self) -> bool:
        have = self.received[-1][0] if self.received else 0
        return (self.target is not None and have >= self.target) or time.monotonic() > self.deadline

    def run(self) -> None:
        try:
            self.follow_websocket() if self.transport == "websocket" else self.follow_long_poll()
        except Exception as error:   # the assertions report it
            self.error = error

    def follow_websocket(self) -> None:
        ws = Ws(self.server.ws_url, self.conversation, after=0, timeout_s=0.5)
        try:
            while not self.done():
                try:
                    frame = ws.receive()
                except websocket.WebSocketTimeoutException:
                    continue
                if frame["type"] == "subscribed":
                    self.ready.set()
                elif frame["type"] == "message":
                    self.received.append((frame["seq"], frame["body"]))
                else:
                    raise AssertionError(f"unexpected frame {frame}")
        finally:
            ws.close()

    def follow_long_poll(self) -> None:
        http, after = Http(self.server.url), 0
        self.ready.set()   # the first poll is held at once (nothing sent yet)
        while not self.done():
            answer = http.long_poll(self.conversation, after, timeout_s=1)
            assert not answer["gap"], answer
            self.received += [(message["seq"], message["body"]) for message in answer["messages"]]
            after = next_after(answer, after)

    def finish(self, target: int) -> list[tuple[int, str]]:
        self.target = target
        self.join(max(0.0, self.deadline - time.monotonic()) + 5)
        assert self.error is None, f"{self.transport}: {self.error!r}"
        return self.received


def follow(server, conversation: str = "general") -> list[Follower]:
    """A WebSocket and a long-poll follower on ``server``, both connected and waiting."""
    followers = [Follower(server, transport, conversation) for transport in ("websocket", "long_poll")]
    for follower in followers:
        follower.start()
    for follower in followers:
        assert follower.ready.wait(5), f"{follower.transport} follower not ready"
    wait_for(lambda: Http(server.url).stats().get("long_polls_held"), 5, "the long poll to be held")
    return followers


def assert_exactly_once_in_order(received: list, sent: dict, transport: str) -> None:
    seqs = [seq for seq, _ in received]
    assert seqs == list(range(1, len(seqs) + 1)), f"{transport}: not every number once, in order: {seqs}"
    missing = sorted(set(sent) - set(seqs))
    assert not missing, f"{transport}: acknowledged but never delivered: {missing}"
    wrong = [(seq, body) for seq, body in received if seq in sent and sent[seq] != body]
    assert not wrong, f"{transport}: delivered with another body: {wrong[:5]}"


@pytest.fixture
def pair(realtime, tmp_path):
    """Factory: two servers (A, B) on their own ports, sharing one SQLite file and ``broker_url``."""
    def start(broker_url: str):
        shared = {"DATA_DIR": str(tmp_path / "shared-data"), "BROKER_URL": broker_url, **FAST_CLIENTS}
        return realtime(env=shared), realtime(env=shared)
    return start


def crossing_delays(send, receiver: Ws, count: int = 8, spacing_s: float = 0.13) -> list[float]:
    """Seconds from each ``send(body)`` (on one process) until ``receiver`` (a subscribed WebSocket
    client of another) has the message. The sends are spread over more than the safety net's one
    second, so a doorbell that never rings shows as a median near half a second."""
    delays = []
    for n in range(count):
        body = f"timed {n}"
        started = time.perf_counter()
        send(body)
        deadline = started + 3
        while time.perf_counter() < deadline:
            frame = receiver.receive()
            if frame.get("body") == body:
                delays.append(time.perf_counter() - started)
                break
        else:
            pytest.fail(f"{body!r} did not cross within 3 s")
        time.sleep(spacing_s)
    return delays


def assert_crosses_in_milliseconds(a, b) -> None:
    """A message sent to A reaches B's client through the doorbell, in milliseconds: not through the
    once-a-second safety net (which would make the median about 0.5 s)."""
    Http(a.url).create("timing")
    ws = Ws(b.ws_url, "timing", after=0, timeout_s=3)
    try:
        assert ws.receive()["type"] == "subscribed"
        delays = crossing_delays(lambda body: Http(a.url).send("timing", "ann", body), ws)
    finally:
        ws.close()
    print(f"A to B's WebSocket client: median {statistics.median(delays) * 1000:.1f} ms, "
          f"max {max(delays) * 1000:.1f} ms over {len(delays)}")
    assert statistics.median(delays) < 0.2, delays


def burst_to_both(a, b, per_thread: int = 100) -> None:
    """Two threads, each sending ``per_thread`` messages alternately to A and B; B's WebSocket and
    long-poll clients get all of them exactly once, in number order."""
    Http(a.url).create("general")
    followers = follow(b)
    sent: dict[int, str] = {}

    def send(thread: int) -> None:
        servers = [Http(a.url), Http(b.url)]
        for i in range(per_thread):
            body = f"t{thread}-{i}"
            sent[servers[i % 2].send("general", f"sender-{thread}", body)] = body

    senders = [threading.Thread(target=send, args=(thread,)) for thread in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    assert len(sent) == 2 * per_thread and max(sent) == 2 * per_thread
    for follower in followers:
        assert_exactly_once_in_order(follower.finish(max(sent)), sent, follower.transport)


def test_clients_on_one_process_get_every_message_sent_to_either_once_in_order(pair, redis_url):
    a, b = pair(redis_url)
    assert_crosses_in_milliseconds(a, b)
    burst_to_both(a, b)
    stats = Http(b.url).stats()
    assert stats["doorbells.heard"] >= 1 and stats["doorbells.rung"] >= 1, stats


def test_the_same_through_rabbitmq(pair, rabbitmq_url):
    a, b = pair(rabbitmq_url)
    assert_crosses_in_milliseconds(a, b)
    burst_to_both(a, b, per_thread=30)


def test_every_message_a_killed_process_acknowledged_reaches_the_other_process_once_in_order(pair, redis_url):
    a, b = pair(redis_url)
    Http(a.url).create("general")
    followers = follow(b)
    acknowledged: dict[int, str] = {}

    def send_until_killed() -> None:
        http = Http(a.url, timeout_s=2)
        for i in range(10_000):
            try:
                acknowledged[http.send("general", "ann", f"m{i}")] = f"m{i}"
            except Exception:   # A is gone (refused, reset, or cut off mid-answer)
                return

    sender = threading.Thread(target=send_until_killed)
    sender.start()
    wait_for(lambda: len(acknowledged) >= 60, 10, "60 messages acknowledged by A")
    a.kill()                      # SIGKILL, in the middle of the burst
    sender.join(10)
    assert not sender.is_alive()
    for follower in followers:    # any committed-but-unacknowledged message may come too, in its place
        assert_exactly_once_in_order(follower.finish(max(acknowledged)), acknowledged, follower.transport)


def test_a_lost_doorbell_is_made_good_by_the_safety_net_within_a_second_or_two(pair, redis_url, tmp_path):
    a, b = pair(redis_url)
    Http(a.url).create("general")
    Http(a.url).send("general", "ann", "through the broker")
    ws = Ws(b.ws_url, "general", after=0, timeout_s=3)
    try:
        assert ws.receive()["seq"] == 1
        assert ws.receive()["type"] == "subscribed"
        store = Store(f"sqlite:///{tmp_path / 'shared-data' / 'messages.db'}")
        try:
            stored = store.append("general", "bob", "no doorbell rings for this one")   # straight to the store
        finally:
            store.close()
        started = time.monotonic()
        try:
            frame = ws.receive()
        except websocket.WebSocketTimeoutException:
            pytest.fail("no doorbell rang and nothing else told B within 3 s: is the safety net running?")
        waited = time.monotonic() - started
    finally:
        ws.close()
    assert (frame["type"], frame["seq"], frame["body"]) == ("message", stored.seq, stored.body)
    assert waited < 2.0, f"took {waited:.2f} s"
    assert Http(b.url).stats()["safety_net.catch_ups"] >= 1


def worker_holding(workers: list[psutil.Process], client: Ws) -> int:
    """The pid of the worker whose socket is the other end of ``client``'s connection."""
    port = client.ws.sock.getsockname()[1]
    for worker in workers:
        if any(c.raddr and c.raddr.port == port for c in worker.net_connections(kind="tcp")):
            return worker.pid
    return 0


def test_processes_share_the_ports_and_a_message_crosses_from_one_worker_to_another(realtime, redis_url):
    server = realtime(env={"BROKER_URL": redis_url, **FAST_CLIENTS}, argv=["--processes", "2"])
    parent = psutil.Process(server.service.process.pid)
    workers = wait_for(lambda: len(parent.children()) == 2 and parent.children(), 5, "two workers")
    Http(server.url).create("general")

    clients: dict[int, Ws] = {}   # worker pid -> a client it serves
    opened = []
    try:
        for _ in range(40):       # the kernel hands each new connection to either worker
            client = Ws(server.ws_url, "general", after=0, timeout_s=3)
            opened.append(client)
            assert client.receive()["type"] == "subscribed"
            clients.setdefault(worker_holding(workers, client), client)
            if len(clients.keys() - {0}) == 2:
                break
        assert len(clients.keys() - {0}) == 2, f"every connection went to {list(clients)}"
        (pid_1, sender), (pid_2, receiver) = [(pid, clients[pid]) for pid in sorted(clients) if pid]
        sender.send("ann", "from one worker to the other", id="1")
        assert [sender.receive()["type"] for _ in range(2)] == ["message", "ack"]   # subscribed itself
        assert receiver.receive()["body"] == "from one worker to the other"
        delays = crossing_delays(lambda body: sender.send("ann", body), receiver)
        assert statistics.median(delays) < 0.2, f"crossing between workers: {delays}"
    finally:
        for client in opened:
            client.close()

    os.kill(pid_1, signal.SIGKILL)   # a worker dies: the parent says so and starts another
    log = server.folder / f"server-{server.starts}.log"
    wait_for(lambda: f"(pid {pid_1}) was killed by SIGKILL; restarting it" in log.read_text(), 5, "the restart")
    wait_for(lambda: [w for w in parent.children() if w.pid not in (pid_1, pid_2)], 5, "a new worker")
    wait_for(lambda: Http(server.url).stats(), 5, "serving after the restart")

    workers = parent.children()
    assert len(workers) == 2
    server.service.process.send_signal(signal.SIGTERM)   # the parent alone: it stops its workers
    assert server.service.process.wait(10) == 0
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"left behind: {alive}"


def run_server(env: dict, *argv: str, timeout_s: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "demos.realtime_delivery.server", "--port", str(free_port()),
                           "--ws-port", str(free_port()), *argv],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout_s)


def test_several_processes_without_a_broker_are_refused(tmp_path):
    result = run_server({"DATA_DIR": str(tmp_path), "BROKER_URL": ""}, "--processes", "2")
    assert result.returncode != 0
    assert "--processes 2 needs BROKER_URL" in result.stderr and "make servers" in result.stderr
    assert not Path(tmp_path, "messages.db").exists()   # refused before doing anything


def test_an_unreachable_broker_fails_at_once_saying_what_to_do(tmp_path):
    port = free_port()
    started = time.monotonic()
    result = run_server({"DATA_DIR": str(tmp_path), "BROKER_URL": f"redis://127.0.0.1:{port}/0"})
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert f"Redis not reachable at redis://127.0.0.1:{port}/0: start it with `make servers`" in result.stderr
    assert f"`redis-server --port {port}`" in result.stderr and "or unset BROKER_URL" in result.stderr
