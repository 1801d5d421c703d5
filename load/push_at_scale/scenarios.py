"""Chapter 2's benchmark scenarios: ``python -m load run 02-push-at-scale``.

Every run starts the push API, one or more gateway processes and one or more lean receiver
processes (receiver.py: the devices, checking every frame by sequence number), then drives the
pusher (locustfile.py) at a fixed rate: open loop. Each gateway's ``/stats`` (connections, CPU
seconds, resident memory, deliveries) is sampled into ``samples-<gateway>.jsonl``; each receiver
writes ``receiver-<n>.json`` (frames received, duplicates, skipped numbers, gaps, live delivery
latencies).

- ``fanout``: every device on one topic, the pusher at several topic rates: deliveries a second
  and delivery latency (p99) with the whole protocol, and, after each run with the same devices
  connected, the bare ``broadcast()`` ceiling (``/bench``: frames back to back, no store, no bus,
  no sequence numbers). At the top rate once more with ``--send-path transport`` (the frame built
  once and its bytes written straight to each connection's transport, skipping ``broadcast()``'s
  per-connection framing). The devices are lean (``lean.LeanDevice``, the same protocol as
  ``DeviceClient`` at a fraction of the load generator's CPU) on uvloop, acking every 2 s, and
  the gateway sends a topic's waiting messages in one frame (``--batch 20``); beside them the
  same deliveries a second in bursts three times larger (2,000 devices), and the first reference
  set's setup (``DeviceClient`` on asyncio, 2,000 devices, 10 pushes/s). Workshop: a sweep of the
  offered load toward the talk's 100,000 a second on both send paths, and one topic to 50,000
  devices over three gateway processes.
- ``connections``: idle devices connecting at a steady rate, one topic push a second to prove them
  alive: gateway memory against connections held (the slope is the memory per connection).
- ``unicast``: pushes to single devices through the whole path (API, store, broker, gateway,
  device, ack) with one gateway process and with two: messages a second and latency percentiles.
- ``heartbeat``: idle devices heartbeating at several intervals: gateway CPU and bytes a second
  against heartbeats a second, to extrapolate to the talk's 3-10 minute adaptive interval.

The embedded defaults unless the environment names real servers, as for the services themselves:
``BROKER_URL`` (RabbitMQ or Redis), ``REDIS_URL`` (the routing table), ``DATABASE_URL`` (PostgreSQL:
each run gets its own empty database on that server). ``meta.json`` records which.
"""
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

from demos.message_queues.store import redacted
from load.harness import Run, Scenario, get_json, log_ready
from load.push_at_scale.system import System
from load.servers import database_for_run

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SPAWN_RATE = 500            # connections per second per receiver process
SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]   # about 28,000 ports each

# The receivers' devices and the gateway's send path for topic fan-out: lean.LeanDevice (the same
# protocol as DeviceClient at a third of the load generator's CPU), uvloop, a cumulative ack every
# 2 s, and up to 20 of a topic's waiting messages in one frame. FULL: the first reference set's
# setup (DeviceClient on the standard asyncio loop, an ack a second, one message a frame).
LEAN = dict(client="lean", event_loop="uvloop", ack_every_s=2.0, batch=20)
FULL = dict(client="full", event_loop="asyncio", ack_every_s=1.0, batch=1)

SIZES = {
    # the tests: every scenario once, small, in well under a minute with the figures
    "smoke": dict(
        fanout=dict(devices=100, receivers=1, gateways=1, rates=(5,), seconds=1.5, bench_frames=20, **LEAN),
        connections=dict(devices=200, receivers=1, gateways=1, hold_s=2),
        unicast=dict(devices=50, receivers=1, gateways=(1,), rates=(20,), seconds=1.5),
        heartbeat=dict(devices=100, receivers=1, intervals=(1.0,), seconds=1.5)),
    # the main job, a few thousand devices, within about 3 minutes on 2 shared cores
    "default": dict(
        # 300 devices at 40 and 100 pushes/s: 12,000 and 30,000 deliveries a second in bursts of 300
        # frames; then 30,000 a second in bursts of 2,000, and the first reference set's setup
        fanout=dict(devices=300, receivers=3, gateways=1, rates=(40, 100), seconds=5, bench_frames=50, **LEAN,
                    bursts=dict(devices=2000, receivers=2, rate=15),
                    before=dict(devices=2000, receivers=2, rate=10, **FULL)),
        connections=dict(devices=4000, receivers=2, gateways=1, hold_s=2),
        unicast=dict(devices=500, receivers=1, gateways=(1, 2), rates=(100,), seconds=4),
        heartbeat=dict(devices=2000, receivers=1, intervals=(1.0, 4.0), seconds=4)),
    # the scale the claims are about: 50,000 devices over 3 gateways (open files: 20,000 a process)
    # and 8 receiver processes on 8 source addresses; about 100 s to connect them
    "workshop": dict(
        fanout=dict(devices=600, receivers=3, gateways=1, rates=(), seconds=5, bench_frames=50, **LEAN,
                    sweep=(50, 80, 120, 160),
                    # an ack every 10 s: at every 2 s, 50,000 devices sent the gateways 25,000 acks a second
                    crowd=dict(devices=50_000, receivers=8, gateways=3, rate=0.5, seconds=10, bench_frames=10,
                               ack_every_s=10.0)),
        connections=dict(devices=50_000, receivers=8, gateways=3, hold_s=5),
        unicast=dict(devices=5000, receivers=2, gateways=(1, 2), rates=(200, 500), seconds=10, locust_processes=2),
        heartbeat=dict(devices=20_000, receivers=4, intervals=(1.0, 5.0, 20.0), seconds=10)),
}


def fanout_plan(size: str) -> dict:
    """Open loop: one topic, every device subscribed, the pusher at each rate; deliveries a second =
    rate x devices. Latency from the API's store to the device, p99; beside it the bare broadcast()
    ceiling measured on the same gateway with the same devices, right after the run."""
    plan = SIZES[size]["fanout"]
    lean = {key: plan[key] for key in LEAN}
    runs = {f"topic-r{rate:g}": params(plan, rate=rate, target="topic", bench_frames=plan["bench_frames"], **lean)
            for rate in plan["rates"]}
    if plan["rates"]:   # the cheaper send path: the frame's bytes written straight to each transport
        top = max(plan["rates"])
        runs[f"topic-r{top:g}-transport"] = params(plan, rate=top, target="topic", bench_frames=plan["bench_frames"],
                                                   send_path="transport", **lean)
    if "bursts" in plan:   # the same deliveries a second in larger bursts (more devices, fewer pushes)
        bursts = plan["bursts"]
        runs[f"topic-{bursts['devices']}-r{bursts['rate']:g}"] = params(
            {**plan, **bursts}, rate=bursts["rate"], target="topic", bench_frames=plan["bench_frames"], **lean)
    if "before" in plan:   # the first reference set's load generator and gateway, for comparison
        before = plan["before"]
        runs[f"before-r{before['rate']:g}"] = params({**plan, **before}, target="topic",
                                                    bench_frames=plan["bench_frames"],
                                                    **{k: v for k, v in before.items() if k not in plan})
    for rate in plan.get("sweep", ()):   # toward the talk's 100,000 a second, both send paths
        for path in ("broadcast", "transport"):
            runs[f"sweep-r{rate:g}-{path}"] = params(plan, rate=rate, target="topic", send_path=path,
                                                     bench_frames=plan["bench_frames"], **lean)
    if "crowd" in plan:   # one topic to 50,000 devices over three gateway processes
        crowd = plan["crowd"]
        runs[f"crowd-{crowd['devices']}"] = params({**plan, **crowd}, target="topic", bench_frames=crowd["bench_frames"],
                                                   **{**lean, **{k: v for k, v in crowd.items() if k in LEAN}},
                                                   **{k: v for k, v in crowd.items() if k not in plan and k not in LEAN})
    return runs


def connections_plan(size: str) -> dict:
    """Open loop (one topic push a second): idle devices connecting; gateway memory against
    connections held, sampled twice a second while they connect."""
    plan = SIZES[size]["connections"]
    return {f"idle-{plan['devices']}": params(plan, rate=1, target="topic", seconds=plan["hold_s"], sample_s=0.5)}


def unicast_plan(size: str) -> dict:
    """Open loop: pushes to single random devices, the whole path with an ack; one gateway process
    against two (devices spread over them)."""
    plan = SIZES[size]["unicast"]
    return {f"gw{gateways}-r{rate:g}": params({**plan, "gateways": gateways}, rate=rate, target="device",
                                              **({"locust_processes": plan["locust_processes"]}
                                                 if "locust_processes" in plan else {}))
            for gateways in plan["gateways"] for rate in plan["rates"]}


def heartbeat_plan(size: str) -> dict:
    """Open loop (one topic push a second): idle devices heartbeating every interval; gateway CPU
    and bytes a second against heartbeats a second."""
    plan = SIZES[size]["heartbeat"]
    return {f"hb-{interval:g}s": params({**plan, "gateways": 1}, rate=1, target="topic", heartbeat_s=interval)
            for interval in plan["intervals"]}


def params(plan: dict, **given) -> dict:
    return {**dict(devices=plan["devices"], receivers=plan["receivers"], gateways=plan["gateways"],
                   seconds=plan.get("seconds", 2), heartbeat_s=30.0, send_path="broadcast", bench_frames=0,
                   sample_s=1.0, message_bytes=100, loop="open", client="full", event_loop="asyncio", batch=1,
                   ack_every_s=1.0), **given}


def real_servers(run: Run) -> dict:
    """``BROKER_URL``, ``REDIS_URL`` (broker and routing table) and a PostgreSQL ``DATABASE_URL`` from
    the environment, as the services read them (the run's own database on that server); the
    embedded defaults otherwise."""
    given = {"broker_url": os.environ.get("BROKER_URL", ""), "redis_url": os.environ.get("REDIS_URL", "")}
    database = os.environ.get("DATABASE_URL", "")
    if database.startswith(("postgresql://", "postgres://")):
        given["database_url"] = database_for_run(database, run.dir)
    run.notes.update(broker_url=redacted(given["broker_url"]) or "filesystem (embedded default)",
                     routes="Redis" if given["redis_url"] else "the store",
                     store=redacted(given.get("database_url", "")) or "SQLite (embedded default)")
    return given


def perform(run: Run) -> None:
    p = run.params
    system = System(run.dir, run.service, **real_servers(run))
    for n in range(p["gateways"]):
        system.start_gateway(f"g{n + 1}", "--send-path", p["send_path"], "--loop", p["event_loop"],
                             "--batch", str(p["batch"]))
    system.start_api()
    gateways = ",".join(system.urls())
    per = math.ceil(p["devices"] / p["receivers"])
    receivers = []
    with contextlib.ExitStack() as sampling:   # from before the devices connect: memory against connections
        for name, (url, _) in system.gateways.items():
            sampling.enter_context(run.sampling(url.replace("ws://", "http://") + "/stats", p["sample_s"],
                                                name=f"samples-{name}"))
        for n in range(p["receivers"]):
            name = f"receiver-{n + 1}"
            receivers.append(run.service(
                name, [sys.executable, "-m", "load.push_at_scale.receiver", "--api", system.api_url,
                       "--devices", str(per), "--prefix", f"r{n + 1}-", "--topic", "news", "--gateways", gateways,
                       "--heartbeat-s", f"{p['heartbeat_s']:g}", "--spawn-rate", str(SPAWN_RATE),
                       "--source-addresses", SOURCES[n % len(SOURCES)], "--report", str(run.dir / f"{name}.json"),
                       "--client", p["client"], "--loop", p["event_loop"], "--ack-every-s", f"{p['ack_every_s']:g}"],
                ready=log_ready(run.dir / "logs" / f"{name}.log", "devices ready"),
                timeout_s=60 + 4 * per / SPAWN_RATE))
        prefixes = ",".join(f"r{n + 1}-" for n in range(p["receivers"]))
        run.notes["pushing_from"] = time.time()
        # enough pushers that each waits for its answer well within its share of the rate (open loop)
        run.locust(LOCUSTFILE, host=system.api_url, users=max(4, math.ceil(p["rate"] / 4)), run_time_s=p["seconds"], arrival_rate=p["rate"],
                   processes=p.get("locust_processes", 1),
                   extra_args=("--target", p["target"], "--topic", "news", "--device-prefixes", prefixes,
                               "--devices-each", str(per)))
        run.notes["pushing_until"] = time.time()
        wait_delivered(run, timeout_s=10)
    run.save_json("gateways", {name: system.gateway_stats(name) for name in system.gateways})
    if p["bench_frames"]:
        run.save_json("bench", {name: get_json(url.replace("ws://", "http://") + f"/bench?frames={p['bench_frames']}",
                                               timeout=120) for name, (url, _) in system.gateways.items()})
    run.save_json("api", get_json(f"{system.api_url}/stats", timeout=60))
    for receiver in receivers:
        receiver.stop()          # SIGTERM: each writes its final report with every latency


def receiver_reports(run_dir: Path) -> list[dict]:
    reports = []
    for path in sorted(run_dir.glob("receiver-*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except ValueError:   # being replaced at this moment: read it next time
            pass
    return reports


def wait_delivered(run: Run, timeout_s: float) -> None:
    """After the pusher stopped: until the receivers' counts stop growing (everything in flight arrived)."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        time.sleep(0.6)   # the receivers write their reports twice a second
        counts = [r.get("received") for r in receiver_reports(run.dir)]
        if counts == last:
            return
        last = counts


def headline(run: Run) -> str:
    reports = receiver_reports(run.dir)
    received = sum(r["received"] for r in reports)
    problems = sum(r["duplicates"] + r["skipped"] for r in reports)
    latencies = sorted(v for r in reports for v in r.get("latency_ms", []))
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
    return (f"{received:,} messages received by {sum(r['ready'] for r in reports):,} devices, p99 "
            f"{p99 if p99 is None else round(p99, 1)} ms, {problems} duplicated or skipped")


SCENARIOS = {name: Scenario(plan, perform, headline) for name, plan in
             {"fanout": fanout_plan, "connections": connections_plan, "unicast": unicast_plan,
              "heartbeat": heartbeat_plan}.items()}
