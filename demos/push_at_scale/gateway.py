"""A gateway (接入层): ``python -m demos.push_at_scale.gateway --port 9001 --gateway-id g1``.

The ``websockets`` library's asyncio server holds the device connections; one process per gateway,
as many processes (and machines) as needed, each with its own id and kombu queue (``bus``).

A device connects to ``ws://host:port/ws?token=<token>`` (``tokens``: a bad or expired token is a
``401`` before any WebSocket exists; a full gateway answers ``503`` and the device tries its next
address), then within ``HELLO_TIMEOUT_S`` sends
``{"type": "hello", "after": {"d": 12, "t:news": 40}, "heartbeat_s": 30}``: the last number it has of
each of its streams (``d`` its own, ``t:<topic>`` each topic of its token). The gateway sets the
device's route (``routing``), then replays from the store what came after the larger of that and the
device's stored ack (``{"type": "gap", ...}`` first where the offline store's bound or TTL passed),
then sends ``{"type": "ready"}`` and every new message as it comes:
``{"type": "msg", "s": "t:news", "seq": 41, "ts": <stored at>, "body": "..."}``.

A topic's messages that wait together (the loop was busy writing the last one) go out in one frame with
``--batch N``: ``{"type": "msgs", "s": "t:news", "msgs": [{"seq": 41, "ts": ..., "body": ...}, ...]}``.

Frames from the device: ``{"type": "ack", "acks": {"d": 13, "t:news": 41}}`` (cumulative: "I have
everything up to N"; written to the store in batches), ``{"type": "hb"}`` (a heartbeat; any frame
counts as one), ``{"type": "pull", "s": "d", "after": N}`` (notify-then-pull: answered with every
stored message after N). Non-urgent messages wait for the device's next heartbeat. An adaptive
device (``device.AdaptiveHeartbeat``) announces its next interval in each heartbeat (``next_s``).

Sequence numbers make delivery exact: the gateway sends a stream's message N only right after N-1
(a number it already sent is dropped, one that skips ahead makes it read the gap from the store),
so nothing is sent twice on one connection and nothing is skipped. Topics take the fast path: one
frame built once, written to every live subscriber with ``websockets.broadcast`` (or, with
``--send-path transport``, the frame's bytes written straight to each connection's transport).
A safety net compares every stream's last number with the store once every ``SAFETY_NET_S``.

Close codes: 1007 malformed JSON, 1008 a bad frame, a flood (more than ``MAX_FRAMES_PER_S``) or an
``after`` beyond what exists, 1009 a frame over ``MAX_FRAME_BYTES``, 1013 a device too slow to read
(over ``MAX_PENDING_BYTES`` unsent), 4000 two heartbeat intervals missed, 4001 replaced by a newer
connection of the same device.
"""
import argparse
import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from demos.limits import raise_open_files_limit

from ..message_queues.store import redacted
from . import loops, tokens
from .bus import Bus, broker_url
from .routing import routes_for
from .store import NOTIFY, URGENT, Message, Store

HELLO_TIMEOUT_S = 10.0
MAX_FRAME_BYTES = 4096
MAX_FRAMES_PER_S = 50
MAX_PENDING_BYTES = 256 * 1024
HEARTBEAT_RANGE_S = (0.2, 600.0)     # what a device may ask for (the talk: 3 to 10 minutes)
DEFAULT_HEARTBEAT_S = 30.0
SAFETY_NET_S = 1.0
ACK_FLUSH_S = 0.2
SWEEP_S = 0.5
MAX_BATCH = 100
LOG = logging.getLogger("push_at_scale.gateway")


class BadFrame(ValueError):
    def __init__(self, message: str, code: int = 1008):
        super().__init__(message)
        self.code = code


def frame_text(message: Message, as_stream: str) -> str:
    return json.dumps({"type": "msg", "s": as_stream, "seq": message.seq, "ts": message.ts, "body": message.body},
                      separators=(",", ":"))


def batch_text(messages: list, as_stream: str) -> str:
    return json.dumps({"type": "msgs", "s": as_stream,
                       "msgs": [{"seq": m.seq, "ts": m.ts, "body": m.body} for m in messages]}, separators=(",", ":"))


def notify_text(stream: str, seq: int) -> str:
    return json.dumps({"type": "notify", "s": stream, "seq": seq}, separators=(",", ":"))


def read_hello(raw, topics: tuple) -> tuple[dict, float]:
    """``(after, heartbeat_s)`` from the device's first frame; BadFrame otherwise."""
    hello = parse(raw)
    if hello.get("type") != "hello":
        raise BadFrame('the first frame must be {"type": "hello", "after": {...}, "heartbeat_s": N}')
    after = numbers(hello.get("after", {}), {"d", *(f"t:{topic}" for topic in topics)})
    return after, heartbeat_interval(hello.get("heartbeat_s", DEFAULT_HEARTBEAT_S))


def heartbeat_interval(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not HEARTBEAT_RANGE_S[0] <= value <= HEARTBEAT_RANGE_S[1]:
        raise BadFrame(f"a heartbeat interval is a number from {HEARTBEAT_RANGE_S[0]} to {HEARTBEAT_RANGE_S[1]} s")
    return float(value)


def parse(raw) -> dict:
    if isinstance(raw, bytes):
        raise BadFrame("send text frames of JSON", 1003)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadFrame("malformed JSON", 1007) from None
    if not isinstance(value, dict):
        raise BadFrame("every frame is a JSON object")
    return value


def numbers(value, allowed: set) -> dict:
    """``{stream: N}`` with streams the device may name and whole numbers >= 0."""
    if not isinstance(value, dict) or not set(value) <= allowed:
        raise BadFrame(f"name only your streams: {', '.join(sorted(allowed))}")
    for number in value.values():
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**62:
            raise BadFrame("sequence numbers are whole numbers >= 0")
    return value


class Device:
    """One device's connection, as the gateway sees it."""
    __slots__ = ("ws", "device", "topics", "sent", "pulled", "heartbeat_s", "last_seen", "held", "frames", "window")

    def __init__(self, ws, claims: tokens.Claims, heartbeat_s: float):
        self.ws, self.device, self.topics = ws, claims.device, claims.topics
        self.sent = {}                  # stream as the device names it -> last number sent (or notified) on this connection
        self.pulled = {}                # stream -> last message body sent on this connection: a pull starts after it
        self.heartbeat_s, self.last_seen = heartbeat_s, time.monotonic()
        self.held: list = []            # non-urgent frames waiting for the next heartbeat
        self.frames, self.window = 0, int(time.monotonic())


class Topic:
    __slots__ = ("stream", "last", "live")

    def __init__(self, stream: str, last: int):
        self.stream, self.last, self.live = stream, last, set()


class Gateway:
    def __init__(self, gateway_id: str, store: Store, bus: Optional[Bus], max_connections: int = 20_000,
                 send_path: str = "broadcast", batch: int = 1):
        self.id, self.store, self.bus = gateway_id, store, bus
        self.routes = routes_for(store)
        self.max_connections, self.send_path = max_connections, send_path
        self.batch = max(1, min(batch, MAX_BATCH))   # topic messages at most in one frame
        self.inbox: deque = deque()                  # bus messages' items, appended by the bus thread
        self.draining = False
        self.outgoing: dict = {}                     # topic -> its next messages, sent at the end of on_items
        self.devices: dict[str, Device] = {}
        self.topics: dict[str, Topic] = {}
        self.stats: Counter = Counter()
        self.pending_acks: dict = {}
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")   # routes, acks: in order
        self.stopping = threading.Event()
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.lag_ms = 0.0

    # ---- the opening handshake: health, stats, token, capacity

    def process_request(self, connection, request):
        parts = urlsplit(request.path)
        if parts.path == "/health":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if parts.path == "/stats":
            response = connection.respond(HTTPStatus.OK, json.dumps(self.snapshot()) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if parts.path == "/bench":
            response = connection.respond(HTTPStatus.OK, json.dumps(self.bench(parse_qs(parts.query))) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if parts.path != "/ws":
            return connection.respond(HTTPStatus.NOT_FOUND, "connect to /ws?token=...\n")
        token = parse_qs(parts.query).get("token", [""])[0]
        try:
            connection.claims = tokens.verify(token)
        except tokens.BadToken as problem:
            self.stats["refused.token"] += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, f"{problem}\n")
        if len(self.devices) >= self.max_connections:
            self.stats["refused.full"] += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "gateway full: try your next address\n")
        return None

    def bench(self, query: dict) -> dict:
        """The bare ``broadcast()`` ceiling with the devices connected now: ``frames`` frames of
        ``bytes`` bytes to every live connection, back to back, with no store, bus, sequence number or
        ack (the devices ignore them). Loopback only: it holds the event loop while it runs."""
        frames = min(int(query.get("frames", ["100"])[0]), 10_000)
        text = json.dumps({"type": "bench", "body": "x" * min(int(query.get("bytes", ["100"])[0]), 4096)})
        live = [device.ws for device in self.devices.values()]
        cpu, wall = os.times(), time.perf_counter()
        if self.send_path == "transport":
            data = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
            for _ in range(frames):
                for ws in live:
                    if ws.protocol.state is State.OPEN:
                        ws.transport.write(data)
        else:
            for _ in range(frames):
                broadcast(live, text)
        wall, after = time.perf_counter() - wall, os.times()
        cpu_s = (after.user + after.system) - (cpu.user + cpu.system)
        return {"connections": len(live), "frames": frames, "deliveries": frames * len(live), "wall_s": round(wall, 4),
                "cpu_s": round(cpu_s, 4), "send_path": self.send_path}

    # ---- one device

    async def handle(self, ws) -> None:
        claims: tokens.Claims = ws.claims
        device = None
        try:
            try:
                raw = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT_S)
                after, heartbeat_s = read_hello(raw, claims.topics)
            except asyncio.TimeoutError:
                raise BadFrame(f"send your hello within {HELLO_TIMEOUT_S:g} s") from None
            await self.loop.run_in_executor(self.writer, self.routes.set, claims.device, self.id)
            device = Device(ws, claims, heartbeat_s)
            old = self.devices.get(claims.device)
            if old is not None:
                self.drop(old)
                self.close(old.ws, 4001, "replaced by a newer connection of this device")
            self.subscribe(device, after)       # no await inside: nothing can slip in between
            self.stats["connected"] += 1
            async for raw in ws:
                self.on_frame(device, raw)
        except BadFrame as problem:
            self.stats[f"close.{problem.code}"] += 1
            await ws.close(problem.code, str(problem))
        except ConnectionClosed:
            pass
        finally:
            if device is not None and self.drop(device):
                self.writer.submit(self.routes.clear, [device.device], self.id)

    def subscribe(self, device: Device, after: dict) -> None:
        """Replay what the device still needs, stream by stream, then make it live (synchronous)."""
        acked = self.store.acked(device.device)
        for name, stream in [("d", f"d:{device.device}"), *((f"t:{t}", f"t:{t}") for t in device.topics)]:
            start = max(after.get(name, 0), acked.get(stream, 0))
            topic = None
            if stream.startswith("t:"):
                topic = self.topic(stream)
                self.catch_up_topic(topic)           # the channel first: then the device joins at its last
                until = topic.last
            else:
                until = None
            batch = self.store.after(stream, start)
            if after.get(name, 0) > batch.last_seq:
                raise BadFrame(f"after {after[name]} for {name}: only {batch.last_seq} exist")
            if batch.gap:
                self.send(device.ws, json.dumps({"type": "gap", "s": name, "first_seq": batch.gap[0],
                                                 "last_seq": batch.gap[1]}))
                self.stats["gaps"] += 1
            last = batch.gap[1] if batch.gap else start
            for message in batch.messages:
                if until is not None and message.seq > until:
                    break
                self.send(device.ws, frame_text(message, name))
                self.stats["deliveries.replay"] += 1
                last = message.seq
            device.sent[name] = device.pulled[name] = last
            if topic is not None:
                topic.live.add(device.ws)
        self.devices[device.device] = device
        device.ws.device = device
        self.send(device.ws, '{"type":"ready"}')

    def drop(self, device: Device) -> bool:
        """Forget the connection (True if it was the device's current one)."""
        for name in device.topics:
            topic = self.topics.get(f"t:{name}")
            if topic is not None:
                topic.live.discard(device.ws)
        if self.devices.get(device.device) is device:
            del self.devices[device.device]
            return True
        return False

    def on_frame(self, device: Device, raw) -> None:
        now = time.monotonic()
        device.last_seen = now
        if int(now) != device.window:
            device.window, device.frames = int(now), 0
        device.frames += 1
        if device.frames > MAX_FRAMES_PER_S:
            self.stats["flood"] += 1
            raise BadFrame(f"more than {MAX_FRAMES_PER_S} frames a second")
        frame = parse(raw)
        kind = frame.get("type")
        if kind == "ack":
            acks = numbers(frame.get("acks"), set(device.sent))
            for name, seq in acks.items():
                if seq > device.sent[name]:
                    raise BadFrame(f"ack {seq} for {name}: only {device.sent[name]} sent")
                stream = f"d:{device.device}" if name == "d" else name
                key = (device.device, stream)
                if seq > self.pending_acks.get(key, 0):
                    self.pending_acks[key] = seq
            self.stats["acks"] += 1
        elif kind == "hb":
            self.stats["heartbeats"] += 1
            if "next_s" in frame:   # an adaptive device announces its next interval
                device.heartbeat_s = heartbeat_interval(frame["next_s"])
            if device.held:
                held, device.held = device.held, []
                for text in held:
                    self.send(device.ws, text)
                self.stats["deliveries.held"] += len(held)
        elif kind == "pull":
            name, after = frame.get("s"), numbers({"x": frame.get("after")}, {"x"})["x"]
            if name not in device.sent:
                raise BadFrame("pull one of your streams")
            stream = f"d:{device.device}" if name == "d" else name
            # several notifications may each have asked: what this connection sent already is not sent again
            for message in self.store.after(stream, max(after, device.pulled[name]), 100).messages:
                self.send(device.ws, frame_text(message, name))
                device.pulled[name] = message.seq
                self.stats["deliveries.pulled"] += 1
        else:
            raise BadFrame('frames are {"type": "ack" | "hb" | "pull", ...}')

    # ---- messages from the bus (on the loop, in order)

    def from_bus(self, items: list) -> None:
        """In the bus thread: queue the items and wake the loop once for everything queued meanwhile,
        so a loop busy writing the last frame takes every message that came in since in one go."""
        self.inbox.append(items)
        if not self.draining:
            self.draining = True
            self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        self.draining = False
        items = []
        while self.inbox:
            items.extend(self.inbox.popleft())
        if items:
            self.on_items(items)

    def on_items(self, items: list) -> None:
        try:
            self.route_items(items)
        finally:
            self.send_outgoing()

    def route_items(self, items: list) -> None:
        for item in items:
            try:
                message = Message(*item)
            except TypeError:
                self.stats["bus.malformed"] += 1
                continue
            self.stats["bus.items"] += 1
            if message.stream.startswith("t:"):
                topic = self.topics.get(message.stream)
                if topic is not None:
                    self.to_topic(topic, message)
            else:
                device = self.devices.get(message.stream[2:])
                if device is not None:
                    self.to_device(device, message)

    def to_topic(self, topic: Topic, message: Message) -> None:
        if message.seq <= topic.last:
            self.stats["duplicates.dropped"] += 1
        elif message.seq == topic.last + 1:
            if self.batch > 1 and not message.flags & NOTIFY:   # sent with its topic's next ones, below
                topic.last = message.seq
                self.outgoing.setdefault(topic, []).append(message)
            else:
                self.send_outgoing()
                self.publish(topic, message)
        else:
            self.send_outgoing()
            self.catch_up_topic(topic)

    def send_outgoing(self) -> None:
        """Each topic's messages held by ``to_topic``: one frame of up to ``batch`` of them."""
        outgoing, self.outgoing = self.outgoing, {}
        for topic, messages in outgoing.items():
            for start in range(0, len(messages), self.batch):
                chunk = messages[start:start + self.batch]
                if len(chunk) == 1:
                    self.publish(topic, chunk[0], advance=False)
                else:
                    self.publish_batch(topic, chunk)

    def publish(self, topic: Topic, message: Message, advance: bool = True) -> None:
        if advance:
            topic.last = message.seq
        if not topic.live:
            return
        began = time.time()
        self.stats["topic.store_to_send_ms"] += round(1000 * (began - message.ts))   # API, store, bus: a sum
        text = notify_text(topic.stream, message.seq) if message.flags & NOTIFY else frame_text(message, topic.stream)
        self.write_all(topic.live, text)
        notified = message.flags & NOTIFY
        for ws in topic.live:
            ws.device.sent[topic.stream] = message.seq
            if not notified:
                ws.device.pulled[topic.stream] = message.seq
        self.stats["deliveries.topic"] += len(topic.live)
        self.stats["topic.messages"] += 1
        self.stats["topic.frames"] += 1
        self.stats["topic.send_ms"] += round(1000 * (time.time() - began))        # writing the frames: a sum

    def publish_batch(self, topic: Topic, messages: list) -> None:
        """Several of a topic's messages, in order, in one frame to every live subscriber:
        ``{"type": "msgs", "s": "t:news", "msgs": [{"seq": 41, "ts": ..., "body": ...}, ...]}``; the
        device checks each number as if they had come one a frame."""
        if not topic.live:
            return
        began = time.time()
        self.stats["topic.store_to_send_ms"] += sum(round(1000 * (began - m.ts)) for m in messages)
        self.write_all(topic.live, batch_text(messages, topic.stream))
        last = messages[-1].seq
        for ws in topic.live:
            device = ws.device
            device.sent[topic.stream] = device.pulled[topic.stream] = last
        self.stats["deliveries.topic"] += len(topic.live) * len(messages)
        self.stats["topic.messages"] += len(messages)
        self.stats["topic.frames"] += 1
        self.stats["topic.batched"] += len(messages)
        self.stats["topic.send_ms"] += round(1000 * (time.time() - began)) * len(messages)

    def write_all(self, connections, text: str) -> None:
        """One frame to every connection: ``broadcast()``, or its bytes built once and written
        straight to each transport (``--send-path transport``)."""
        if self.send_path == "transport":
            data = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
            for ws in connections:
                if ws.protocol.state is State.OPEN:
                    ws.transport.write(data)
        else:
            broadcast(connections, text)

    def catch_up_topic(self, topic: Topic) -> None:
        batch = self.store.after(topic.stream, topic.last)
        if batch.gap:   # some are gone already: the live subscribers reconnect and get the gap marker
            for ws in list(topic.live):
                self.drop(ws.device)
                self.close(ws, 1013, "fell behind the store's bound: reconnect")
            topic.last = batch.gap[1]
        for message in batch.messages:
            self.publish(topic, message)
        topic.last = max(topic.last, batch.last_seq)
        self.stats["catch_ups"] += 1

    def to_device(self, device: Device, message: Optional[Message]) -> None:
        """Send ``message`` if it is the next one; read the store if it skips ahead (or is None)."""
        sent = device.sent["d"]
        if message is not None and message.seq <= sent:
            self.stats["duplicates.dropped"] += 1
            return
        if message is None or message.seq > sent + 1:
            self.stats["catch_ups"] += 1
            batch = self.store.after(f"d:{device.device}", sent)
            if batch.gap:
                self.drop(device)
                return self.close(device.ws, 1013, "fell behind the store's bound: reconnect")
            messages = batch.messages
        else:
            messages = [message]
        for message in messages:
            device.sent["d"] = message.seq
            if message.flags & NOTIFY:
                text = notify_text("d", message.seq)
            else:
                text = frame_text(message, "d")
                device.pulled["d"] = message.seq
            if message.flags & URGENT:
                self.send(device.ws, text)
                self.stats["deliveries.device"] += 1
            else:
                device.held.append(text)

    def topic(self, stream: str) -> Topic:
        topic = self.topics.get(stream)
        if topic is None:
            topic = self.topics[stream] = Topic(stream, self.store.last_seq(stream))
        return topic

    def send(self, ws, text: str) -> None:
        broadcast([ws], text)   # synchronous: a write to one connection's buffer

    def close(self, ws, code: int, reason: str) -> None:
        self.stats[f"close.{code}"] += 1
        asyncio.ensure_future(ws.close(code, reason))

    # ---- background work

    async def every(self, interval_s: float, work) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                result = work()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                LOG.exception("background work failed: %s", work.__name__)

    async def measure_lag(self) -> None:
        """How late the event loop runs a 50 ms timer: its worst lag since the last /stats."""
        while True:
            started = self.loop.time()
            await asyncio.sleep(0.05)
            lag_ms = (self.loop.time() - started - 0.05) * 1000
            self.lag_ms = max(self.lag_ms, lag_ms)

    def sweep(self) -> None:
        """Close devices that missed two heartbeat intervals, or that read too slowly."""
        now = time.monotonic()
        for device in list(self.devices.values()):
            if now - device.last_seen > 2 * device.heartbeat_s:
                self.drop(device)
                self.close(device.ws, 4000, "missed two heartbeats")
                self.writer.submit(self.routes.clear, [device.device], self.id)
            elif device.ws.transport is not None and device.ws.transport.get_write_buffer_size() > MAX_PENDING_BYTES:
                self.drop(device)
                self.close(device.ws, 1013, "too slow: reconnect with your last numbers")

    def flush_acks(self) -> None:
        if self.pending_acks:
            acks, self.pending_acks = self.pending_acks, {}
            self.writer.submit(self.store.ack, [(device, stream, seq) for (device, stream), seq in acks.items()])

    async def safety_net(self) -> None:
        """Catch every stream up with the store: a bus message lost or late costs at most this long."""
        streams = [*self.topics, *(f"d:{d}" for d in self.devices)]
        lasts = await self.loop.run_in_executor(None, self.store.last_seqs, streams)
        for stream, last in lasts.items():
            if stream.startswith("t:"):
                topic = self.topics.get(stream)
                if topic is not None and last > topic.last:
                    self.stats["safety_net"] += 1
                    self.catch_up_topic(topic)
            else:
                device = self.devices.get(stream[2:])
                if device is not None and last > device.sent["d"]:
                    self.stats["safety_net"] += 1
                    self.to_device(device, None)

    async def alive(self) -> None:
        await self.loop.run_in_executor(self.writer, self.routes.alive, self.id)

    def take_lag(self) -> float:
        lag, self.lag_ms = self.lag_ms, 0.0
        return lag

    def snapshot(self) -> dict:
        times = os.times()
        return {"gateway": self.id, "connections": len(self.devices), "cpu_s": round(times.user + times.system, 3),
                "rss_bytes": rss_bytes(), "topics": {t: topic.last for t, topic in self.topics.items()},
                "max_loop_lag_ms": round(self.take_lag(), 1),
                "t": time.time(), **self.stats}

    async def run(self, host: str, port: int, ready=lambda port: None) -> None:
        self.loop = asyncio.get_running_loop()
        await self.alive()
        if self.bus is not None:
            threading.Thread(target=self.bus.consume_forever, name="bus",
                             args=(self.id, self.from_bus,
                                   self.stopping), daemon=True).start()
        tasks = [asyncio.create_task(self.every(interval, work)) for interval, work in
                 ((1.0, self.alive), (SWEEP_S, self.sweep), (ACK_FLUSH_S, self.flush_acks),
                  (SAFETY_NET_S, self.safety_net))]
        tasks.append(asyncio.create_task(self.measure_lag()))
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, stop.set)
        # max_queue=None: reading never pauses, so the close frame of a device that flooded us (queued
        # behind its flood) is read and the closing handshake completes; the flood check bounds the rest
        async with serve(self.handle, host, port, process_request=self.process_request, ping_interval=None,
                         compression=None, max_size=MAX_FRAME_BYTES, max_queue=None, backlog=4096) as server:
            ready(server.sockets[0].getsockname()[1])
            await stop.wait()
        self.stopping.set()
        self.flush_acks()
        for task in tasks:
            task.cancel()
        self.writer.shutdown(wait=True)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--gateway-id", default="", help="unique per gateway (default: g<port>)")
    parser.add_argument("--max-connections", type=int, default=0, help="default: the open-files limit minus 100")
    parser.add_argument("--send-path", choices=("broadcast", "transport"), default="broadcast")
    parser.add_argument("--batch", type=int, default=1,
                        help=f"a topic's messages waiting together go out in one frame, up to this many (1 to {MAX_BATCH})")
    parser.add_argument("--loop", choices=loops.LOOPS, default="asyncio", help="the event loop (uvloop: libuv's)")
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", os.path.join("var", "push_at_scale")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    open_files = raise_open_files_limit()
    store = Store.from_env(args.data_dir)
    url = broker_url(args.data_dir)
    gateway = Gateway(args.gateway_id or f"g{args.port}", store, Bus(url, os.environ.get("PUSH_NAMESPACE", "push")),
                      args.max_connections or max(100, open_files - 100), args.send_path, args.batch)

    def ready(port: int) -> None:
        print(f"gateway {gateway.id} on ws://{args.host}:{port}/ws (at most {gateway.max_connections:,} devices); "
              f"store {redacted(store.url)}; broker {url.split('@')[-1]}", flush=True)
    loops.run(gateway.run(args.host, args.port, ready), args.loop)


if __name__ == "__main__":
    main()
