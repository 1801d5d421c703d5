"""Chapter 2's guarantees on one gateway and the embedded broker: a message stored while its device
is offline arrives once and in order when it reconnects; past the offline bound the device gets a
gap marker, never a silent hole; dropped acks (notify-then-pull) repeat nothing; a device that
stops heartbeating is closed after two intervals; a non-urgent push waits for the next heartbeat."""
import asyncio
import time

import pytest

from demos.push_at_scale.device import DeviceClient
from load.harness import wait_for
from load.push_at_scale.system import System, service_starter


@pytest.fixture
def system(tmp_path):
    started = []
    made = []

    def make(gateways=("g1",), **env):
        system = System(tmp_path, service_starter(tmp_path, started), env_extra={k: str(v) for k, v in env.items()})
        for name in gateways:
            system.start_gateway(name)
        system.start_api()
        made.append(system)
        return system
    yield make
    for service in reversed(started):
        service.stop()


async def until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def online(client: DeviceClient, stop: asyncio.Event) -> asyncio.Task:
    task = asyncio.create_task(client.run(stop))
    await asyncio.wait_for(client.ready.wait(), 15)
    return task


def test_offline_messages_arrive_once_in_order_on_reconnect(system):
    s = system(OFFLINE_BOUND=50)
    token = s.register("d1", ["news"])
    got = []

    async def scenario():
        stop = asyncio.Event()
        client = DeviceClient(token, s.urls(), on_message=lambda c, f: got.append((f["s"], f["seq"], f["body"])))
        task = await online(client, stop)
        s.push(device="d1", body="live-1")
        await until(lambda: len(got) == 1, 10, "the live message")
        await asyncio.sleep(0.4)   # its ack reaches the store
        stop.set()
        await task
        for n in range(20):        # offline: stored, not routed
            s.push(device="d1", body=f"offline-{n}")
            s.push(topic="news", body=f"news-{n}")
        again = asyncio.Event()
        client.ready.clear()
        task = await online(client, again)
        await until(lambda: len(got) == 41, 10, "every offline message")
        await asyncio.sleep(0.5)   # nothing more comes
        again.set()
        await task
        return client
    client = asyncio.run(scenario())
    assert [body for stream, _, body in got if stream == "d"] == ["live-1"] + [f"offline-{n}" for n in range(20)]
    assert [body for stream, _, body in got if stream == "t:news"] == [f"news-{n}" for n in range(20)]
    assert (client.streams.duplicates, client.streams.skipped, client.streams.gaps) == (0, 0, 0)


def test_a_device_past_the_offline_bound_gets_a_gap_marker(system):
    s = system(OFFLINE_BOUND=5)
    token = s.register("d1")
    for n in range(12):
        s.push(device="d1", body=f"m{n}")
    got = []

    async def scenario():
        stop = asyncio.Event()
        client = DeviceClient(token, s.urls(), on_message=lambda c, f: got.append(f["seq"]))
        task = await online(client, stop)
        await until(lambda: len(got) == 5, 10, "the five kept")
        stop.set()
        await task
        return client
    client = asyncio.run(scenario())
    assert got == [8, 9, 10, 11, 12]
    assert client.streams.gaps == 1 and client.streams.skipped == 0


def test_acks_dropped_on_purpose_with_notify_then_pull_repeat_nothing(system):
    """The talk's weak network: acks never arrive. The device reconnects three times; each time it
    pulls after the last number it has, so nothing comes twice, and every message comes."""
    s = system()
    token = s.register("d1")
    got = []

    async def scenario():
        client = DeviceClient(token, s.urls(), ack=False, on_message=lambda c, f: got.append(f["seq"]))
        sent = 0
        for round_ in range(3):
            stop = asyncio.Event()
            client.ready.clear()
            task = await online(client, stop)
            for _ in range(5):
                s.push(device="d1", body=f"n{sent}", notify=True)
                sent += 1
            await until(lambda: len(got) == sent, 10, f"round {round_}'s pulls")
            stop.set()
            await task
        return client
    client = asyncio.run(scenario())
    assert got == list(range(1, 16))
    assert client.streams.duplicates == 0 and client.connections == 3


def test_a_device_that_misses_two_heartbeats_is_closed_and_a_non_urgent_push_waits_for_one(system):
    s = system()
    quiet, slow = s.register("quiet"), s.register("slow")
    held = []

    async def scenario():
        stop = asyncio.Event()
        # promises a heartbeat every 0.3 s and never sends one (its own interval is an hour)
        silent = DeviceClient(quiet, s.urls())
        silent.heartbeat_s, hello_interval = 3600, 0.3
        silent.heartbeats = lambda ws: asyncio.sleep(3600)
        sleepy = DeviceClient(slow, s.urls(), heartbeat_s=1.0, on_message=lambda c, f: held.append(f["body"]))
        original = silent.connected_once

        async def connect_once(stop_event):
            silent.heartbeat_s = hello_interval
            await original(stop_event)
            silent.heartbeat_s = 3600
        silent.connected_once = connect_once
        first = asyncio.create_task(silent.run(stop, attempts=1))
        second = await online(sleepy, stop)
        await asyncio.sleep(0.1)
        s.push(device="slow", body="later", urgent=False)
        await until(lambda: silent.closes, 10, "the silent device closed")
        await until(lambda: held, 10, "the held push")
        stop.set()
        await asyncio.gather(first, second)
        return silent
    silent = asyncio.run(scenario())
    assert silent.closes["close.4000"] >= 1
    stats = s.gateway_stats("g1")   # it was held, then sent with the next heartbeat, not at once
    assert stats["deliveries.held"] == 1 and "deliveries.device" not in stats


def test_an_adaptive_device_lengthens_its_heartbeat_and_the_gateway_follows(system):
    from demos.push_at_scale.device import AdaptiveHeartbeat
    s = system()
    token = s.register("phone")

    async def scenario():
        stop = asyncio.Event()
        client = DeviceClient(token, s.urls(), adaptive=AdaptiveHeartbeat(0.2, 0.8))
        task = await online(client, stop)
        await asyncio.sleep(3.5)   # 0.2 + 0.4 + 0.8 + 0.8 + ...: fixed at 0.2 s it would be over 15
        stop.set()
        await task
        return client
    client = asyncio.run(scenario())
    stats = s.gateway_stats("g1")
    assert client.heartbeat_s == 0.8 and client.connections == 1 and not client.closes
    assert 2 <= stats["heartbeats"] <= 8 and "close.4000" not in stats
