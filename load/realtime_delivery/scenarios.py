"""Chapter 1's benchmark scenarios: what the harness runs for ``python -m load run 01-realtime-delivery``.

All open loop: publishers send at a fixed rate whatever the receivers do, and receivers report the
end-to-end delivery latency of every message (see locustfile.py). The server's ``/stats`` (its
counters, CPU seconds and resident memory) is sampled once a second into ``samples.jsonl``, so the
notebook divides CPU by deliveries, and memory by clients held, over the steady part of a run only
(``notes.steady_window``: from ``settle_s`` after Locust spawned the last receiver until the
load began to stop).

- ``latency``: each transport with many receivers spread over conversations, at a low and a
  high message rate: latency distribution, requests per delivered message, server CPU per delivery.
- ``interval``: short polling at several intervals: latency against interval (the article: about
  half the interval on average).
- ``wan``: each transport with its receivers behind the delay proxy (load/delay_proxy.py), the
  publisher next to the server: latency over a slow link, and the bytes on the wire per delivered
  message (counted by the proxy); the round trips and rates are the size's.
- ``capacity``: as many nearly idle clients as the size says (one message a second to prove they
  are alive) on WebSocket and on long polling: clients held and server memory per client.
"""
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from load.harness import Run, Scenario, get_json, headline_for, http_ready
from load.servers import free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RECEIVERS = {"short-poll": ["ShortPoller"], "long-poll": ["LongPoller"], "sse": ["SseReceiver"],
             "websocket": ["WebSocketReceiver"]}   # transport "none": the publisher alone
SPAWN_RATE = 200          # receivers connected per second
MESSAGE_BYTES = 100       # body of each message
STEADY_AFTER_SPAWN_S = 2  # after Locust spawned the last receiver, time to connect it (3 RTT and more);
                          # a size may set settle_s instead
STOP_TIMEOUT_S = 1        # at the end, receivers blocked in a held poll are not waited for longer

# The load generator and the server share the machine (2 cores for the reference set). Latency
# runs use 2 Locust processes: with one, 1,000 receivers kept its core full. At 100 messages/s to
# 20 receivers each (2,000 deliveries/s) the long-poll run's publisher fell 2-10% behind its pace,
# with 2 or 3 Locust processes: the machine was full. 50 messages/s (1,000 deliveries/s) keeps
# every run within 1%. The interval scenario stays at 200 receivers: 1,000 short pollers at a
# 0.25 s interval would be 4,000 polls a second, the server's limit on one core.
SIZES = {
    # the tests: every scenario's code path once, in under a minute with the figures
    "smoke": dict(
        latency=dict(receivers=20, conversations=2, seconds=2.5, rates=(10,), processes=1, settle_s=0.5),
        interval=dict(receivers=20, conversations=2, seconds=2.5, rate=10, intervals=(0.5,), settle_s=0.5),
        wan=dict(receivers=10, conversations=1, seconds=2.5, rates=(5,), rtts_ms=(50,), settle_s=0.5,
                 transports=("long-poll", "websocket")),
        capacity=dict(clients={"websocket": 100, "long-poll": 100}, conversations=5, hold_s=2,
                      spawn_rate=300, processes=1, settle_s=0.5)),
    # the main job: within 3 minutes on 2 cores; short steady windows, repeated for the spread
    "default": dict(
        latency=dict(receivers=300, conversations=30, seconds=4, rates=(10, 50), processes=2, settle_s=1),
        interval=dict(receivers=200, conversations=20, seconds=4, rate=20, intervals=(0.25, 0.5, 1.0, 2.0),
                      settle_s=1),
        wan=dict(receivers=100, conversations=10, seconds=4, rates=(50,), rtts_ms=(50,), settle_s=1),
        capacity=dict(clients={"websocket": 2_000, "long-poll": 1_000}, conversations=50, hold_s=4,
                      spawn_rate=500, processes=1, settle_s=1)),
    # the scale the claims are about (1,000 receivers, 10,000 idle clients, two round trips), and
    # longer runs; made three times. Valid on 2 cores, at about 10 minutes a repetition.
    "workshop": dict(
        latency=dict(receivers=1000, conversations=50, seconds=12, rates=(10, 50), processes=2),
        interval=dict(receivers=200, conversations=30, seconds=12, rate=20, intervals=(0.25, 0.5, 1.0, 2.0, 4.0)),
        wan=dict(receivers=200, conversations=10, seconds=10, rates=(10, 50), rtts_ms=(50, 200)),
        capacity=dict(clients={"websocket": 10_000, "long-poll": 5_000}, conversations=100, hold_s=8,
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


def drive(run: Run, server: Server, transport: str, *, receivers: int, conversations: int, rate: float,
          seconds: float, processes: int = 1, interval: float = 1.0, spawn_rate: int = SPAWN_RATE,
          host: str = "", long_poll_timeout_s: float = 30, samples: Optional[dict] = None,
          settle_s: float = STEADY_AFTER_SPAWN_S, stop_timeout_s: float = STOP_TIMEOUT_S,
          extra_args: tuple = ()) -> None:
    """One Locust run: a publisher at ``rate`` messages/s and ``receivers`` on ``transport``,
    the server's /stats (and any other ``samples``: name -> URL) sampled once a second. The steady
    window starts ``settle_s`` after the last receiver was spawned."""
    options = ("--conversations", str(conversations), "--message-rate", f"{rate:g}",
               "--poll-interval", f"{interval:g}", "--long-poll-timeout", f"{long_poll_timeout_s:g}",
               "--stop-timeout", f"{stop_timeout_s:g}", *extra_args)
    with contextlib.ExitStack() as sampling:
        for name, url in {"samples": f"{server.url}/stats", **(samples or {})}.items():
            sampling.enter_context(run.sampling(url, every_s=0.5, name=name))   # 2+ in a short steady window, busy or not
        result = run.locust(LOCUSTFILE, host=host or server.url, users=receivers + 1, spawn_rate=spawn_rate,
                            run_time_s=seconds + receivers / spawn_rate, processes=processes,
                            extra_args=(*options, "Publisher", *RECEIVERS.get(transport, ())))
    spawned, stopping = result.pacing["spawned_at"], result.pacing["stopping_at"]
    if spawned and stopping:   # else Locust never got going: the run is invalid and says why
        run.notes["steady_window"] = [round(spawned + settle_s, 3), round(stopping, 3)]
    run.save_json("service", get_json(f"{server.url}/stats"))


def latency_plan(size: str) -> dict:
    """Open loop: every transport at each message rate, many receivers: latency distribution,
    requests per delivered message, server CPU per delivery. Before them, the publisher alone at
    that rate: the server's CPU for taking the messages in (and idling), which the notebook
    subtracts to get the CPU that delivering them costs."""
    plan = SIZES[size]["latency"]
    runs = {}
    for rate in plan["rates"]:
        common = dict(rate=rate, conversations=plan["conversations"], seconds=plan["seconds"], **tuning(plan))
        runs[f"publish-only-r{rate}"] = run_params("none", receivers=0, **common)
        for transport in RECEIVERS:
            runs[f"{transport}-r{rate}"] = run_params(transport, receivers=plan["receivers"],
                                                      locust_processes=plan["processes"], **common)
    return runs


def interval_plan(size: str) -> dict:
    """Open loop: short polling latency against its interval (the article: about half the
    interval on average)."""
    plan = SIZES[size]["interval"]
    return {f"short-poll-i{seconds:g}": run_params("short-poll", interval=seconds, rate=plan["rate"],
                                                   receivers=plan["receivers"], seconds=plan["seconds"],
                                                   conversations=plan["conversations"], **tuning(plan))
            for seconds in plan["intervals"]}


def wan_plan(size: str) -> dict:
    """Open loop over an emulated wide-area link: receivers behind a delay proxy (one for HTTP,
    one for WebSocket), the publisher next to the server. Every rate at the first round-trip time
    (bytes on the wire against the message rate), the first rate at the others (latency against
    the round trip)."""
    plan = SIZES[size]["wan"]
    return {f"{transport}-rtt{rtt_ms}-r{rate}": run_params(transport, rtt_ms=rtt_ms, rate=rate,
                                                           receivers=plan["receivers"], seconds=plan["seconds"],
                                                           conversations=plan["conversations"], **tuning(plan))
            for rtt_ms in plan["rtts_ms"]
            for rate in (plan["rates"] if rtt_ms == plan["rtts_ms"][0] else plan["rates"][:1])
            for transport in plan.get("transports", RECEIVERS)}


def capacity_plan(size: str) -> dict:
    """Nearly idle clients (one message a second over all conversations), as many as the size says,
    on WebSocket and on long polling: how many one server process holds, and its memory per client."""
    plan = SIZES[size]["capacity"]
    return {f"{transport}-{clients}": run_params(transport, receivers=clients, clients=clients, rate=1,
                                                 conversations=plan["conversations"], seconds=plan["hold_s"],
                                                 locust_processes=plan["processes"], spawn_rate=plan["spawn_rate"],
                                                 long_poll_timeout_s=60, **tuning(plan))
            for transport, clients in plan["clients"].items()}


def tuning(plan: dict) -> dict:
    """The run settings a size may change: how long to settle after spawning, when to stop."""
    return {key: plan[key] for key in ("settle_s", "stop_timeout_s") if key in plan}


def run_params(transport: str, **given) -> dict:
    """Every parameter a run and its figures need, recorded in its meta.json: the defaults below,
    overridden by ``given``."""
    return {**dict(transport=transport, loop="open", interval=1.0, rtt_ms=0, message_bytes=MESSAGE_BYTES,
                   locust_processes=1, spawn_rate=SPAWN_RATE, long_poll_timeout_s=30,
                   settle_s=STEADY_AFTER_SPAWN_S, stop_timeout_s=STOP_TIMEOUT_S), **given}


def perform(run: Run) -> None:
    """One run from its params: the server (behind two delay proxies when ``rtt_ms``), then Locust."""
    p = run.params
    server = start_server(run)
    host, samples, extra_args = "", {}, ()
    if p["rtt_ms"]:
        http_port, http_stats = run.delay_proxy("delay-proxy-http", server.port, p["rtt_ms"])
        ws_port, ws_stats = run.delay_proxy("delay-proxy-ws", server.ws_port, p["rtt_ms"])
        host, samples = f"http://127.0.0.1:{http_port}", {"proxy-http": http_stats, "proxy-ws": ws_stats}
        extra_args = ("--publish-host", server.url, "--ws-url", f"ws://127.0.0.1:{ws_port}")
    drive(run, server, p["transport"], receivers=p["receivers"], conversations=p["conversations"], rate=p["rate"],
          seconds=p["seconds"], processes=p["locust_processes"], interval=p["interval"], spawn_rate=p["spawn_rate"],
          host=host, long_poll_timeout_s=p["long_poll_timeout_s"], samples=samples, settle_s=p["settle_s"],
          stop_timeout_s=p["stop_timeout_s"],
          extra_args=("--message-bytes", str(p["message_bytes"]), *extra_args))


def delivery(run: Run) -> str:
    """The run's delivery latency and its lost, repeated or reordered messages."""
    transport = run.params["transport"]
    if transport == "none":
        cpu = (run.locust_result.services_cpu_s if run.locust_result else {}).get("im-server")
        return f"publisher alone: {run.params['rate']} messages/s, server CPU {cpu} s"
    by_name = run.locust_result.summary["by_name"] if run.locust_result else {}
    lost = sum(s["failures"] for name, s in by_name.items() if name.startswith("order"))
    return f"{headline_for(run, f'deliver {transport}', 'delivery')}; {lost} lost, repeated or reordered"


SCENARIOS = {name: Scenario(plan, perform, delivery) for name, plan in
             {"latency": latency_plan, "interval": interval_plan, "wan": wan_plan, "capacity": capacity_plan}.items()}
