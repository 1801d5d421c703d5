"""Chapter 1's benchmark scenarios: what the harness runs for ``python -m load run 01-realtime-delivery``.

All open loop: publishers send at a fixed rate whatever the receivers do, and receivers report the
end-to-end delivery latency of every message (see locustfile.py). The server's ``/stats`` (its
counters, CPU seconds and resident memory) is sampled once a second into ``samples.jsonl``, so the
notebook divides CPU by deliveries, and memory by clients held, over the steady part of a run only
(``notes.steady_window``: from two seconds after Locust spawned the last receiver until the
load began to stop).

- ``latency``: each transport with many receivers spread over conversations, at a low and a
  high message rate: latency distribution, requests per delivered message, server CPU per delivery.
- ``interval``: short polling at several intervals: latency against interval (the article: about
  half the interval on average).
- ``wan``: each transport with its receivers behind the delay proxy (load/delay_proxy.py) at 50 and
  200 ms round-trip time, the publisher next to the server: latency over a slow link, and the bytes
  on the wire per delivered message (counted by the proxy) at a low and a high message rate.
- ``capacity``: as many nearly idle clients as the size says (one message a second to prove they
  are alive) on WebSocket and on long polling: clients held and server memory per client.
"""
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from load.harness import Harness, Run, get_json, http_ready
from load.servers import free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RECEIVERS = {"short-poll": ["ShortPoller"], "long-poll": ["LongPoller"], "sse": ["SseReceiver"],
             "websocket": ["WebSocketReceiver"]}   # transport "none": the publisher alone
SPAWN_RATE = 200          # receivers connected per second
STEADY_AFTER_SPAWN_S = 2  # after Locust spawned the last receiver, time to connect it (3 RTT and more)

# The load generator and the server share the machine (2 cores for the reference set). Latency
# runs use 2 Locust processes: with one, 1,000 receivers kept its core full. At 100 messages/s to
# 20 receivers each (2,000 deliveries/s) the long-poll run's publisher fell 2-10% behind its pace,
# with 2 or 3 Locust processes: the machine was full. 50 messages/s (1,000 deliveries/s) keeps
# every run within 1%. The interval scenario stays at 200 receivers: 1,000 short pollers at a
# 0.25 s interval would be 4,000 polls a second, the server's limit on one core.
SIZES = {
    "smoke": dict(
        latency=dict(receivers=40, conversations=4, seconds=5, rates=(10,), processes=1),
        interval=dict(receivers=40, conversations=4, seconds=5, rate=10, intervals=(0.5, 1.0)),
        wan=dict(receivers=20, conversations=2, seconds=5, rates=(5,), rtts_ms=(50,)),
        capacity=dict(clients={"websocket": 300, "long-poll": 300}, conversations=10, hold_s=3,
                      spawn_rate=300, processes=1)),
    "default": dict(
        latency=dict(receivers=1000, conversations=50, seconds=12, rates=(10, 50), processes=2),
        interval=dict(receivers=200, conversations=30, seconds=12, rate=20, intervals=(0.25, 0.5, 1.0, 2.0)),
        wan=dict(receivers=200, conversations=10, seconds=10, rates=(10, 50), rtts_ms=(50, 200)),
        capacity=dict(clients={"websocket": 10_000, "long-poll": 5_000}, conversations=100, hold_s=8,
                      spawn_rate=500, processes=2)),
    "workshop": dict(
        latency=dict(receivers=2000, conversations=100, seconds=40, rates=(10, 50, 100), processes=4),
        interval=dict(receivers=1000, conversations=100, seconds=40, rate=20,
                      intervals=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0)),
        wan=dict(receivers=500, conversations=25, seconds=30, rates=(10, 50), rtts_ms=(20, 50, 100, 200, 400)),
        capacity=dict(clients={"websocket": 15_000, "long-poll": 10_000}, conversations=100, hold_s=20,
                      spawn_rate=500, processes=2)),
}


@dataclass
class Server:
    url: str       # http://127.0.0.1:port: pages, polling, SSE, /stats
    port: int
    ws_port: int


def start_server(run: Run) -> Server:
    """Start the one-process IM server (all four transports) with its data in the run's folder."""
    port, ws_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    run.service("im-server", [sys.executable, "-m", "demos.realtime_delivery.server",
                              "--port", str(port), "--ws-port", str(ws_port)],
                env={"DATA_DIR": str(run.dir / "data"), "BROKER_URL": ""},   # one process, in-process fan-out
                ready=http_ready(f"{url}/health"))
    return Server(url, port, ws_port)


def start_delay_proxy(run: Run, name: str, target_port: int, rtt_ms: float) -> tuple[int, str]:
    """A delay proxy in front of ``target_port``; returns its port and its stats URL."""
    port, stats_port = free_port(), free_port()
    stats_url = f"http://127.0.0.1:{stats_port}/stats"
    run.service(name, [sys.executable, "-m", "load.delay_proxy", "--listen", f"127.0.0.1:{port}",
                       "--target", f"127.0.0.1:{target_port}", "--rtt-ms", f"{rtt_ms:g}",
                       "--stats-port", str(stats_port)], ready=http_ready(stats_url))
    return port, stats_url


def drive(run: Run, server: Server, transport: str, *, receivers: int, conversations: int, rate: float,
          seconds: float, processes: int = 1, interval: float = 1.0, spawn_rate: int = SPAWN_RATE,
          host: str = "", long_poll_timeout_s: float = 30, samples: Optional[dict] = None,
          extra_args: tuple = ()) -> None:
    """One Locust run: a publisher at ``rate`` messages/s and ``receivers`` on ``transport``,
    the server's /stats (and any other ``samples``: name -> URL) sampled once a second."""
    options = ("--conversations", str(conversations), "--message-rate", f"{rate:g}",
               "--poll-interval", f"{interval:g}", "--long-poll-timeout", f"{long_poll_timeout_s:g}",
               "--stop-timeout", "5", *extra_args)
    with contextlib.ExitStack() as sampling:
        for name, url in {"samples": f"{server.url}/stats", **(samples or {})}.items():
            sampling.enter_context(run.sampling(url, name=name))
        result = run.locust(LOCUSTFILE, host=host or server.url, users=receivers + 1, spawn_rate=spawn_rate,
                            run_time_s=seconds + receivers / spawn_rate, processes=processes,
                            extra_args=(*options, "Publisher", *RECEIVERS.get(transport, ())))
    spawned, stopping = result.pacing["spawned_at"], result.pacing["stopping_at"]
    if spawned and stopping:   # else Locust never got going: the run is invalid and says why
        run.notes["steady_window"] = [round(spawned + STEADY_AFTER_SPAWN_S, 3), round(stopping, 3)]
    run.save_json("service", get_json(f"{server.url}/stats"))


def latency(h: Harness) -> None:
    """Open loop: every transport at a low and a high message rate, many receivers. Before them,
    the publisher alone at that rate: the server's CPU for taking the messages (and idling), which
    the notebook subtracts to get the CPU that delivering them costs."""
    size = SIZES[h.size]["latency"]
    for rate in size["rates"]:
        with h.run(f"publish-only-r{rate}", transport="none", rate=rate, loop="open", receivers=0,
                   conversations=size["conversations"]) as run:
            drive(run, start_server(run), "none", receivers=0, conversations=size["conversations"], rate=rate,
                  seconds=size["seconds"])
        for transport in RECEIVERS:
            with h.run(f"{transport}-r{rate}", transport=transport, rate=rate, loop="open",
                       receivers=size["receivers"], conversations=size["conversations"],
                       locust_processes=size["processes"]) as run:
                drive(run, start_server(run), transport, receivers=size["receivers"],
                      conversations=size["conversations"], rate=rate, seconds=size["seconds"],
                      processes=size["processes"])


def interval(h: Harness) -> None:
    """Open loop: short polling latency against its interval."""
    size = SIZES[h.size]["interval"]
    for seconds in size["intervals"]:
        with h.run(f"short-poll-i{seconds:g}", transport="short-poll", rate=size["rate"], interval=seconds,
                   loop="open", receivers=size["receivers"], conversations=size["conversations"]) as run:
            drive(run, start_server(run), "short-poll", receivers=size["receivers"],
                  conversations=size["conversations"], rate=size["rate"], seconds=size["seconds"],
                  interval=seconds)


def wan(h: Harness) -> None:
    """Open loop over an emulated wide-area link: receivers behind a delay proxy (one for HTTP,
    one for WebSocket), the publisher next to the server. Every rate at the first round-trip time
    (bytes on the wire against the message rate), the first rate at the others (latency against
    the round trip)."""
    size = SIZES[h.size]["wan"]
    for rtt_ms in size["rtts_ms"]:
        for rate in size["rates"] if rtt_ms == size["rtts_ms"][0] else size["rates"][:1]:
            for transport in RECEIVERS:
                with h.run(f"{transport}-rtt{rtt_ms}-r{rate}", transport=transport, rate=rate, rtt_ms=rtt_ms,
                           loop="open", receivers=size["receivers"], conversations=size["conversations"]) as run:
                    server = start_server(run)
                    http_port, http_stats = start_delay_proxy(run, "delay-proxy-http", server.port, rtt_ms)
                    ws_port, ws_stats = start_delay_proxy(run, "delay-proxy-ws", server.ws_port, rtt_ms)
                    drive(run, server, transport, receivers=size["receivers"], conversations=size["conversations"],
                          rate=rate, seconds=size["seconds"], host=f"http://127.0.0.1:{http_port}",
                          samples={"proxy-http": http_stats, "proxy-ws": ws_stats},
                          extra_args=("--publish-host", server.url, "--ws-url", f"ws://127.0.0.1:{ws_port}"))


def capacity(h: Harness) -> None:
    """Nearly idle clients (one message a second over all conversations), as many as the size says:
    how many one server process holds, and its memory per client."""
    size = SIZES[h.size]["capacity"]
    for transport, clients in size["clients"].items():
        with h.run(f"{transport}-{clients}", transport=transport, clients=clients, rate=1, loop="open",
                   conversations=size["conversations"], locust_processes=size["processes"]) as run:
            drive(run, start_server(run), transport, receivers=clients, conversations=size["conversations"],
                  rate=1, seconds=size["hold_s"], processes=size["processes"], spawn_rate=size["spawn_rate"],
                  long_poll_timeout_s=60)


SCENARIOS = {"latency": latency, "interval": interval, "wan": wan, "capacity": capacity}
