"""A device: the client the tests, the loads and a reader by hand use.

    client = DeviceClient(token, ["ws://127.0.0.1:9001", "ws://127.0.0.1:9002"])
    await client.run(stop)          # until stop is set: connects, hellos, heartbeats, acks

It carries a list of gateway addresses and moves to the next one when a gateway is full (503) or
gone; it resumes each stream after the last number it has (``Streams``), so a reconnect, a dropped
ack or a killed gateway neither loses nor repeats a message. ``Streams`` counts every frame it
receives (a duplicate or a skipped number is counted, not hidden).

By hand: ``python -m demos.push_at_scale.device --api http://127.0.0.1:8000 --device d1 --topic news``.
"""
import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Callable, Optional

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus


async def back_off(stop: asyncio.Event, failed: int) -> None:
    """Before the next address: 50 ms more for each failure in a row (at most 1 s), or until ``stop``."""
    if not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.05 * min(failed, 20))
        except asyncio.TimeoutError:
            pass


class Streams:
    """The last number of each stream, and every irregularity seen."""
    __slots__ = ("last", "received", "duplicates", "skipped", "gaps")

    def __init__(self):
        self.last: dict = {}
        self.received = self.duplicates = self.skipped = self.gaps = 0

    def take(self, stream: str, seq: int) -> bool:
        """True for the next number of the stream; a repeat or a jump is counted."""
        last = self.last.get(stream, 0)
        if seq <= last:
            self.duplicates += 1
            return False
        if seq != last + 1:
            self.skipped += seq - last - 1
        self.last[stream] = seq
        self.received += 1
        return True

    def gap(self, stream: str, first: int, last: int) -> None:
        """The gateway said ``first..last`` are no longer kept: not a loss we hide, a loss we were told of."""
        self.gaps += 1
        self.last[stream] = max(self.last.get(stream, 0), last)


class AdaptiveHeartbeat:
    """The talk's adaptive heartbeat (3 to 10 minutes there, seconds here): start at ``low`` and
    double after every interval the connection survived, up to ``high``; after a connection lost
    without a close frame (a NAT binding that timed out, in the field), go back to the last interval
    that worked and keep it. Each heartbeat tells the gateway the next interval (``next_s``), so it
    closes the device only after two of those missed."""

    def __init__(self, low: float, high: float):
        self.current = self.good = low
        self.high, self.settled = high, False

    def survived(self) -> float:
        self.good = self.current
        if not self.settled:
            self.current = min(self.high, self.current * 2)
        return self.current

    def lost(self) -> float:
        if self.current != self.good:
            self.current, self.settled = self.good, True
        return self.current


class DeviceClient:
    def __init__(self, token: str, urls: list[str], *, heartbeat_s: float = 30.0, ack: bool = True,
                 ack_every_s: float = 0.1, on_message: Optional[Callable] = None, source_address: str = "",
                 hello_after: bool = True, adaptive: Optional[AdaptiveHeartbeat] = None):
        self.token, self.urls, self.heartbeat_s = token, list(urls), heartbeat_s
        self.ack, self.ack_every_s, self.on_message = ack, ack_every_s, on_message
        self.source_address, self.hello_after = source_address, hello_after
        self.adaptive = adaptive
        if adaptive is not None:
            self.heartbeat_s = adaptive.current
        self.streams = Streams()
        self.acked: dict = {}
        self.closes: Counter = Counter()      # close codes and HTTP refusals seen
        self.connections = 0
        self.ready = asyncio.Event()
        self.ready_at = float("inf")          # when the first connection was live (after its replay)
        self.url = ""

    async def run(self, stop: asyncio.Event, attempts: int = 0) -> None:
        """Connect and receive until ``stop``; after ``attempts`` failed connections in a row (0: no
        limit), give up."""
        index, failed = 0, 0
        while not stop.is_set():
            self.url = self.urls[index % len(self.urls)]
            try:
                await self.connected_once(stop)
                failed = 0
            except InvalidStatus as refused:
                self.closes[f"http.{refused.response.status_code}"] += 1
                failed += 1
            except (OSError, ConnectionClosed, InvalidHandshake, asyncio.TimeoutError):
                failed += 1
            if attempts and failed >= attempts:
                return
            index += 1
            await back_off(stop, failed)

    async def connected_once(self, stop: asyncio.Event) -> None:
        extra = {"local_addr": (self.source_address, 0)} if self.source_address else {}
        async with connect(f"{self.url}/ws?token={self.token}", compression=None, ping_interval=None,
                           open_timeout=20, close_timeout=2, max_size=2**20, **extra) as ws:
            self.connections += 1
            hello = {"type": "hello", "heartbeat_s": self.heartbeat_s}
            if self.hello_after:
                hello["after"] = dict(self.streams.last)
            await ws.send(json.dumps(hello))
            background = [asyncio.create_task(self.heartbeats(ws))]
            if self.ack:
                background.append(asyncio.create_task(self.acks(ws)))
            stopper = asyncio.create_task(stop.wait())
            try:
                receiving = asyncio.create_task(self.receive(ws))
                await asyncio.wait([receiving, stopper], return_when=asyncio.FIRST_COMPLETED)
                if receiving.done():
                    receiving.result()
                else:
                    receiving.cancel()
            finally:
                stopper.cancel()
                for task in background:
                    task.cancel()
            if ws.close_code is not None:
                self.closes[f"close.{ws.close_code}"] += 1
            if self.adaptive is not None and ws.close_code in (None, 1006):   # gone without a word
                self.heartbeat_s = self.adaptive.lost()

    async def receive(self, ws) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "msg":
                    if self.streams.take(frame["s"], frame["seq"]) and self.on_message is not None:
                        self.on_message(self, frame)
                elif kind == "msgs":   # several of a stream's messages in one frame, each checked
                    for message in frame["msgs"]:
                        message["s"] = frame["s"]
                        if self.streams.take(frame["s"], message["seq"]) and self.on_message is not None:
                            self.on_message(self, message)
                elif kind == "notify":
                    if frame["seq"] > self.streams.last.get(frame["s"], 0):
                        await ws.send(json.dumps({"type": "pull", "s": frame["s"],
                                                  "after": self.streams.last.get(frame["s"], 0)}))
                elif kind == "gap":
                    self.streams.gap(frame["s"], frame["first_seq"], frame["last_seq"])
                elif kind == "ready":
                    if not self.ready.is_set():
                        self.ready_at = time.time()
                        self.ready.set()
        except ConnectionClosed:
            pass
        if ws.close_code is not None:
            self.closes[f"close.{ws.close_code}"] += 1

    async def heartbeats(self, ws) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self.adaptive is None:
                await ws.send('{"type":"hb"}')
            else:
                self.heartbeat_s = self.adaptive.survived()
                await ws.send(json.dumps({"type": "hb", "next_s": self.heartbeat_s}))

    async def acks(self, ws) -> None:
        while True:
            await asyncio.sleep(self.ack_every_s)
            new = {s: n for s, n in self.streams.last.items() if self.acked.get(s, 0) < n}
            if new:
                await ws.send(json.dumps({"type": "ack", "acks": new}))
                self.acked.update(new)


def main() -> None:
    import urllib.request
    parser = argparse.ArgumentParser(description="one device by hand: register, connect, print what arrives")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--device", default="d1")
    parser.add_argument("--topic", action="append", default=[])
    parser.add_argument("--gateway", action="append", default=[], help="ws://host:port (default: what the API says)")
    parser.add_argument("--heartbeat-s", type=float, default=30.0)
    args = parser.parse_args()
    request = urllib.request.Request(f"{args.api}/devices", json.dumps({"device": args.device, "topics": args.topic}).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        registered = json.load(response)
    urls = args.gateway or registered["gateways"]
    if not urls:
        raise SystemExit("no gateway address: pass --gateway ws://127.0.0.1:9001 or set GATEWAYS for the API")

    def show(client, frame):
        print(f"{frame['s']} #{frame['seq']} after {1000 * (time.time() - frame['ts']):.1f} ms: {frame['body']}", flush=True)

    async def forever():
        await DeviceClient(registered["token"], urls, heartbeat_s=args.heartbeat_s, on_message=show).run(asyncio.Event())
    asyncio.run(forever())


if __name__ == "__main__":
    main()
