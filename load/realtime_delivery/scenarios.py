"""Chapter 1's benchmark scenarios: what the harness runs for ``python -m load run 01-realtime-delivery``.

All open loop: one publisher sends at a fixed rate whatever the receivers do, and receivers
report the end-to-end delivery latency of every message (see locustfile.py).

- ``latency``: each transport with many receivers spread over conversations, at a low and a
  high message rate: latency distribution, requests per delivered message, server CPU per delivery.
- ``interval``: short polling at several intervals: latency against interval (the article: about
  half the interval on average).
"""
import sys
from pathlib import Path

from load.harness import Harness, Run, get_json, http_ready
from load.servers import free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RECEIVERS = {"short-poll": "ShortPoller", "long-poll": "LongPoller", "sse": "SseReceiver",
             "websocket": "WebSocketReceiver"}

SIZES = {
    #            receivers, conversations, seconds, rates (messages/s), short-poll intervals (s)
    "smoke":    dict(receivers=40, conversations=4, seconds=5, rates=(10,), intervals=(0.5, 1.0)),
    # 200 receivers keep the load generator and the server within two cores. With 1,000 short
    # pollers on one Locust process, the pollers and the publisher fell behind their pace; with
    # 300, the 0.25 s interval (1,200 polls a second) fell 1.1% behind on an idle 2-core machine
    # (invalid) and 5-13% behind whenever anything else ran beside it, and so did the publisher
    # of the 100 messages/s SSE and WebSocket runs (3%). With 200, 0.7% at most.
    "default":  dict(receivers=200, conversations=30, seconds=12, rates=(20, 100), intervals=(0.25, 0.5, 1.0, 2.0)),
    "workshop": dict(receivers=1000, conversations=100, seconds=40, rates=(20, 100, 200),
                     intervals=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0)),
}


def start_server(run: Run) -> str:
    """Start the one-process IM server (all four transports) with its data in the run's folder."""
    port, ws_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    run.service("im-server", [sys.executable, "-m", "demos.realtime_delivery.server",
                              "--port", str(port), "--ws-port", str(ws_port)],
                env={"DATA_DIR": str(run.dir / "data")}, ready=http_ready(f"{url}/health"))
    return url


def drive(run: Run, url: str, transport: str, size: dict, rate: float, interval: float = 1.0) -> None:
    receivers, publishers = size["receivers"], size.get("publishers", 1)
    with run.sampling(f"{url}/stats"):
        run.locust(LOCUSTFILE, host=url, users=receivers + publishers, spawn_rate=min(200, receivers + 1),
               run_time_s=size["seconds"] + receivers / 200,   # spawning takes receivers / 200 s
               processes=size.get("processes", 1),
               extra_args=("--conversations", str(size["conversations"]), "--message-rate", f"{rate:g}",
                           "--publishers", str(publishers),
                           "--poll-interval", f"{interval:g}", "--long-poll-timeout", "30",
                           "--stop-timeout", "5", "Publisher", RECEIVERS[transport]))
    run.save_json("service", get_json(f"{url}/stats"))


def latency(h: Harness) -> None:
    """Open loop: every transport at a low and a high message rate, many receivers."""
    size = SIZES[h.size]
    for rate in size["rates"]:
        for transport in RECEIVERS:
            with h.run(f"{transport}-r{rate}", transport=transport, rate=rate, loop="open",
                       receivers=size["receivers"], conversations=size["conversations"]) as run:
                drive(run, start_server(run), transport, size, rate)


def interval(h: Harness) -> None:
    """Open loop: short polling latency against its interval."""
    size = SIZES[h.size]
    rate = size["rates"][0]
    for seconds in size["intervals"]:
        with h.run(f"short-poll-i{seconds:g}", transport="short-poll", rate=rate, interval=seconds,
                   loop="open", receivers=size["receivers"], conversations=size["conversations"]) as run:
            drive(run, start_server(run), "short-poll", size, rate, interval=seconds)


SCENARIOS = {"latency": latency, "interval": interval}
