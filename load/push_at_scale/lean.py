"""A lean device for the receivers: the protocol of ``demos.push_at_scale.device.DeviceClient``
(its token, a hello with the last number of each stream, heartbeats, cumulative acks, its next
address on a refusal or a lost connection, every frame checked by sequence number in ``Streams``),
on the ``websockets`` library's sans-I/O ``ClientProtocol`` under a plain ``asyncio.Protocol``.

Why: ``DeviceClient`` (the asyncio connection: a queue and a task wake-up per message) costs its
receiver process about 54 µs per frame, more than the gateway spends sending it (about 22 µs), so
at 20,000 deliveries a second the load generator, not the gateway, filled the two cores. Here a
frame is parsed where it arrives (``data_received``) with no task, and one ticker per receiver
process (``tick``) sends every device's acks and heartbeats, so the devices cost a fraction of it.
Nothing is skipped: every frame is parsed as JSON and its number checked.
"""
import asyncio
import json
import time
from collections import Counter
from typing import Callable, Optional
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from demos.push_at_scale.device import Streams, back_off

OPEN_TIMEOUT_S = 20.0


class Refused(ConnectionError):
    """The gateway answered the opening handshake with something other than 101 (401, 503...)."""


class LeanDevice(asyncio.Protocol):
    def __init__(self, token: str, urls: list[str], *, heartbeat_s: float = 30.0,
                 on_message: Optional[Callable] = None, source_address: str = ""):
        self.token, self.urls, self.heartbeat_s = token, list(urls), heartbeat_s
        self.on_message, self.source_address = on_message, source_address
        self.streams = Streams()
        self.acked: dict = {}
        self.closes: Counter = Counter()
        self.connections = 0
        self.ready = asyncio.Event()
        self.ready_at = float("inf")
        self.ws: Optional[ClientProtocol] = None
        self.transport = None
        self.opened = self.done = None
        self.last_hb = 0.0
        self.partial: list = []
        self.fast: Optional[bool] = None     # None: not yet open; True: read_frames; False: the parser again
        self.buffer = b""

    # ---- connecting, and the next address

    async def run(self, stop: asyncio.Event) -> None:
        index, failed = 0, 0
        while not stop.is_set():
            try:
                await self.connected_once(self.urls[index % len(self.urls)], stop)
                failed = 0
            except Refused:
                failed += 1
            except (OSError, asyncio.TimeoutError):
                failed += 1
            finally:
                if self.transport is not None:
                    self.transport.abort()
                    self.transport = None
            index += 1
            await back_off(stop, failed)

    async def connected_once(self, url: str, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        parts = urlsplit(url)
        self.ws = ClientProtocol(parse_uri(f"{url}/ws?token={self.token}"), max_size=2**20)
        self.fast, self.buffer = None, b""
        self.opened, self.done = loop.create_future(), loop.create_future()
        extra = {"local_addr": (self.source_address, 0)} if self.source_address else {}
        await asyncio.wait_for(loop.create_connection(lambda: self, parts.hostname, parts.port, **extra),
                               OPEN_TIMEOUT_S)
        self.ws.send_request(self.ws.connect())
        self.flush()
        await asyncio.wait_for(asyncio.shield(self.opened), OPEN_TIMEOUT_S)
        self.connections += 1
        self.last_hb = time.monotonic()
        self.send({"type": "hello", "heartbeat_s": self.heartbeat_s, "after": dict(self.streams.last)})
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([self.done, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not self.done.done() and self.ws.state is State.OPEN:   # stopping: a clean close
            self.ws.send_close(1000)
            self.flush()
            try:
                await asyncio.wait_for(asyncio.shield(self.done), 2)
            except asyncio.TimeoutError:
                pass

    # ---- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.fast:
            data = self.read_frames(data)
            if not data:
                return
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if type(event) is Frame:
                if event.opcode is Opcode.TEXT and event.fin:
                    self.on_text(event.data)
                elif event.opcode in (Opcode.TEXT, Opcode.CONT):     # a fragmented message
                    self.partial.append(event.data)
                    if event.fin:
                        self.on_text(b"".join(self.partial))
                        self.partial = []
                elif event.opcode is Opcode.CLOSE:
                    self.closes[f"close.{ws.close_code}"] += 1
            elif isinstance(event, Response):
                if event.status_code == 101 and ws.handshake_exc is None:
                    self.opened.set_result(None)
                else:
                    self.closes[f"http.{event.status_code}"] += 1
                    self.opened.set_exception(Refused(f"{event.status_code}"))
        self.flush()
        if ws.close_expected() and self.transport is not None:
            self.transport.close()
        elif ws.state is State.OPEN and not self.partial and self.fast is None:
            self.fast = True     # from the next bytes on: read_frames

    def read_frames(self, data: bytes) -> bytes:
        """The open connection's frames from the gateway, read here rather than by the sans-I/O
        parser (a third of this process's time): unmasked, unfragmented text frames, each handed to
        ``on_text``. Anything else (a close, a ping, a fragment, a masked frame) and all that
        follows goes back to ``ClientProtocol``, which is where it stopped; returns those bytes."""
        if self.buffer:
            data, self.buffer = self.buffer + data, b""
        at, end = 0, len(data)
        while end - at >= 2:
            first, second = data[at], data[at + 1]
            if first != 0x81 or second & 0x80:    # not a final text frame, or masked: the parser's
                self.fast = False
                return data[at:]
            length, head = second, 2
            if length == 126:
                if end - at < 4:
                    break
                length, head = int.from_bytes(data[at + 2:at + 4], "big"), 4
            elif length == 127:
                self.fast = False
                return data[at:]
            if end - at < head + length:
                break
            self.on_text(data[at + head:at + head + length])
            at += head + length
        self.buffer = data[at:]
        return b""

    def eof_received(self):
        self.ws.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the handshake"))
        if not self.done.done():
            self.done.set_result(None)

    # ---- frames

    def on_text(self, raw: bytes) -> None:
        frame = json.loads(raw)
        kind = frame["type"]
        if kind == "msg":
            if self.streams.take(frame["s"], frame["seq"]) and self.on_message is not None:
                self.on_message(self, frame)
        elif kind == "msgs":   # several of a stream's messages in one frame, each checked
            stream = frame["s"]
            for message in frame["msgs"]:
                if self.streams.take(stream, message["seq"]) and self.on_message is not None:
                    self.on_message(self, message)
        elif kind == "notify":
            if frame["seq"] > self.streams.last.get(frame["s"], 0):
                self.send({"type": "pull", "s": frame["s"], "after": self.streams.last.get(frame["s"], 0)})
        elif kind == "gap":
            self.streams.gap(frame["s"], frame["first_seq"], frame["last_seq"])
        elif kind == "ready":
            if not self.ready.is_set():
                self.ready_at = time.time()
                self.ready.set()

    def send(self, frame: dict) -> None:
        if self.ws is not None and self.ws.state is State.OPEN and self.transport is not None:
            self.ws.send_text(json.dumps(frame, separators=(",", ":")).encode())
            self.flush()

    def flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self.ws.data_to_send()
            return
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def tick(self, now: float) -> None:
        """The ticker's visit: a cumulative ack of what is new, and a heartbeat when one is due."""
        if self.ws is None or self.ws.state is not State.OPEN:
            return
        new = {s: n for s, n in self.streams.last.items() if self.acked.get(s, 0) < n}
        if new:
            self.send({"type": "ack", "acks": new})
            self.acked.update(new)
        if now - self.last_hb >= self.heartbeat_s:
            self.send({"type": "hb"})
            self.last_hb = now


async def ticker(devices: list, every_s: float, stop: asyncio.Event, slots: int = 10) -> None:
    """Visit every device once every ``every_s`` seconds, a tenth of them at a time (so the acks of
    a crowd do not arrive at the gateway in one burst)."""
    slot = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every_s / slots)
        except asyncio.TimeoutError:
            pass
        now = time.monotonic()
        for device in devices[slot::slots]:
            device.tick(now)
        slot = (slot + 1) % slots
