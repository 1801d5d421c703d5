"""A lean receiver: many devices in one asyncio process, for crowds a Locust user per device cannot
follow (one Locust process reads about 30,000 WebSocket messages a second; see
../shared/notes/platform-facts.md). Started by the scenarios as a harness service:

    python -m load.push_at_scale.receiver --api http://127.0.0.1:8000 --devices 2000 --prefix r1- \\
        --topic news --gateways ws://127.0.0.1:9001,ws://127.0.0.1:9002 --report report.json

Each device is a ``demos.push_at_scale.device.DeviceClient`` (tokens, hello with its last numbers,
heartbeats, cumulative acks, reconnects to its next address), or with ``--client lean`` a
``lean.LeanDevice`` (the same protocol, frames read where they arrive, one ticker for every
device's acks and heartbeats): nothing is skipped for speed. ``--loop uvloop`` runs it on uvloop. Every
frame is checked by sequence number (a duplicate, a skipped number or a gap is counted), and every
message that arrived live (after the device's replay) gives a delivery latency from the moment
the API stored it. Devices are spread over the gateways and over the ``--source-addresses``
(127.0.0.x: about 28,000 ports each). Prints ``all N devices ready`` once every device is live;
writes ``--report`` twice a second and on SIGTERM, with its own CPU seconds.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import time
from collections import Counter

from demos.limits import raise_open_files_limit
from demos.push_at_scale.device import DeviceClient
from demos.push_at_scale import loops
from load.push_at_scale.lean import LeanDevice, ticker
from load.push_at_scale.system import post_json

MAX_SAMPLES = 10_000   # per receiver process: p99 within about 0.1 percentile point, 90 KB a report
REPORT_EVERY_S = 0.5


class Latencies:
    """Every live delivery's latency (ms), or a uniform sample of them past MAX_SAMPLES."""

    def __init__(self):
        self.values, self.count = [], 0

    def add(self, client, frame) -> None:
        now = time.time()
        if frame["ts"] < client.ready_at:
            return   # published before this device was live: a replay, not a push
        self.count += 1
        value = (now - frame["ts"]) * 1000
        if len(self.values) < MAX_SAMPLES:
            self.values.append(value)
        else:
            slot = random.randrange(self.count)
            if slot < MAX_SAMPLES:
                self.values[slot] = value


def register(api: str, names: list[str], topics: list[str]) -> list[str]:
    tokens = []
    for start in range(0, len(names), 1000):
        status, answer = post_json(f"{api}/devices", {"devices": names[start:start + 1000], "topics": topics}, 60)
        if status != 201:
            raise SystemExit(f"registering devices failed: {status} {answer}")
        tokens += answer["tokens"]
    return tokens


def report(clients: list, latencies: Latencies, started: float) -> dict:
    streams = [client.streams for client in clients]
    closes = Counter()
    for client in clients:
        closes.update(client.closes)
    times = os.times()
    return {"t": time.time(), "started": started, "devices": len(clients),
            "ready": sum(client.ready.is_set() for client in clients),
            "received": sum(s.received for s in streams), "duplicates": sum(s.duplicates for s in streams),
            "skipped": sum(s.skipped for s in streams), "gaps": sum(s.gaps for s in streams),
            "connections": sum(client.connections for client in clients), "closes": dict(closes),
            "last": {stream: [min(values), max(values)] for stream, values in last_by_stream(streams).items()},
            "device_last_total": sum(s.last.get("d", 0) for s in streams),
            "live_deliveries": latencies.count, "cpu_s": round(times.user + times.system, 3)}


def last_by_stream(streams) -> dict:
    found: dict = {}
    for s in streams:
        for stream, last in s.last.items():
            if stream != "d":
                found.setdefault(stream, []).append(last)
    return found


def write(path: str, data: dict) -> None:
    with open(path + ".tmp", "w") as out:
        json.dump(data, out)
    os.replace(path + ".tmp", path)


async def main_async(args) -> None:
    started = time.time()
    names = [f"{args.prefix}{n}" for n in range(args.devices)]
    tokens = await asyncio.to_thread(register, args.api, names, args.topic)
    gateways = args.gateways.split(",")
    sources = [a for a in args.source_addresses.split(",") if a]
    latencies = Latencies()
    clients = []
    for n, token in enumerate(tokens):
        shift = n % len(gateways)
        urls, source = gateways[shift:] + gateways[:shift], sources[n % len(sources)] if sources else ""
        if args.client == "lean":
            clients.append(LeanDevice(token, urls, heartbeat_s=args.heartbeat_s, on_message=latencies.add,
                                      source_address=source))
        else:
            clients.append(DeviceClient(token, urls, heartbeat_s=args.heartbeat_s, ack_every_s=args.ack_every_s,
                                        on_message=latencies.add, source_address=source))
    stop = asyncio.Event()
    if args.client == "lean":   # one ticker for every device's acks and heartbeats
        ticking = asyncio.create_task(ticker(clients, min(args.ack_every_s, args.heartbeat_s / 2), stop))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = []
    for n, client in enumerate(clients):
        tasks.append(asyncio.create_task(client.run(stop)))
        if n % 50 == 49:
            await asyncio.sleep(50 / args.spawn_rate)
        if stop.is_set():
            break

    async def announce():
        await asyncio.gather(*(client.ready.wait() for client in clients))
        print(f"all {len(clients)} devices ready after {time.time() - started:.1f} s", flush=True)
    announcing = asyncio.create_task(announce())
    while not stop.is_set():
        write(args.report, report(clients, latencies, started))
        try:
            await asyncio.wait_for(stop.wait(), REPORT_EVERY_S)
        except asyncio.TimeoutError:
            pass
    announcing.cancel()
    await asyncio.wait(tasks, timeout=5)
    final = report(clients, latencies, started)
    final["latency_ms"] = [round(v, 3) for v in latencies.values]
    write(args.report, final)


def main() -> None:
    parser = argparse.ArgumentParser(description="many devices in one process, counting and checking every frame")
    parser.add_argument("--api", required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--prefix", default="r-")
    parser.add_argument("--topic", action="append", default=[])
    parser.add_argument("--gateways", required=True, help="comma-separated ws:// URLs")
    parser.add_argument("--source-addresses", default="", help="comma-separated 127.0.0.x to connect from")
    parser.add_argument("--heartbeat-s", type=float, default=30.0)
    parser.add_argument("--ack-every-s", type=float, default=1.0)
    parser.add_argument("--spawn-rate", type=float, default=500.0, help="connections opened per second")
    parser.add_argument("--client", choices=("full", "lean"), default="full",
                        help="full: demos.push_at_scale.device.DeviceClient; lean: lean.LeanDevice (same protocol, "
                             "a fraction of the CPU)")
    parser.add_argument("--loop", choices=loops.LOOPS, default="asyncio")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    raise_open_files_limit()
    loops.run(main_async(args), args.loop)


if __name__ == "__main__":
    main()
