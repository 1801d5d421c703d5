"""Nothing lost, nothing repeated, across a gateway SIGKILL: devices spread over two gateway
processes, pushes to single devices and to a topic at a steady rate, one gateway killed in the
middle; its devices move to the other gateway (their next address) and resume every stream after
the last number they have. On RabbitMQ and on Redis (also the routing table there), and on the
embedded filesystem broker, which loses nothing either (the store is the truth; the broker only
carries the news) and is slower; and with the store and the routing table in PostgreSQL."""
import asyncio
import random
import threading
import time

import pytest

from demos.push_at_scale.device import DeviceClient
from load.push_at_scale.system import System, service_starter

DEVICES = 16
PUSH_S = 3.0
KILL_AT_S = 1.0


@pytest.fixture(params=["rabbitmq", "redis", "embedded", "rabbitmq+postgres"])
def brokers(request):
    """The broker (and routing table) the system runs on; ``+postgres``: the store and the routing
    table in PostgreSQL, as on several machines."""
    if request.param == "rabbitmq+postgres":
        return {"broker_url": request.getfixturevalue("rabbitmq_url"),
                "database_url": request.getfixturevalue("postgres_database_url")}
    if request.param == "rabbitmq":
        return {"broker_url": request.getfixturevalue("rabbitmq_url")}
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return {"broker_url": url, "redis_url": url}
    return {}


@pytest.mark.timeout(90)
def test_a_gateway_sigkill_loses_and_repeats_nothing(tmp_path, brokers):
    started = []
    s = System(tmp_path, service_starter(tmp_path, started), **brokers)
    try:
        s.start_gateway("g1")
        # the survivor on the fan-out's fast paths: batch frames, frames straight to each transport, uvloop
        s.start_gateway("g2", "--batch", "20", "--send-path", "transport", "--loop", "uvloop")
        s.start_api()
        names = [f"dev{n}" for n in range(DEVICES)]
        tokens = {name: s.register(name, ["news"]) for name in names}
        urls = s.urls()
        pushed = {name: 0 for name in names}
        topic_pushed = [0]

        def pusher():
            rng = random.Random(7)
            started_at = time.monotonic()
            while time.monotonic() - started_at < PUSH_S:
                name = rng.choice(names)
                s.push(device=name, body=f"to {name}")
                pushed[name] += 1
                if rng.random() < 0.3:
                    s.push(topic="news", body="news")
                    topic_pushed[0] += 1
                time.sleep(0.005)

        async def scenario():
            stop = asyncio.Event()
            clients = [DeviceClient(tokens[name], urls if n % 2 == 0 else urls[::-1], heartbeat_s=1.0)
                       for n, name in enumerate(names)]
            tasks = [asyncio.create_task(client.run(stop)) for client in clients]
            await asyncio.wait_for(asyncio.gather(*(client.ready.wait() for client in clients)), 20)
            thread = threading.Thread(target=pusher, daemon=True)
            thread.start()
            await asyncio.sleep(KILL_AT_S)
            s.gateways["g1"][1].kill()
            await asyncio.to_thread(thread.join, 30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if all(c.streams.last.get("d", 0) == pushed[name] and c.streams.last.get("t:news", 0) == topic_pushed[0]
                       for c, name in zip(clients, names)):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)   # a late duplicate would show now
            stop.set()
            await asyncio.gather(*tasks)
            return clients
        clients = asyncio.run(scenario())
        moved = sum(client.connections > 1 for client in clients)
        assert moved >= DEVICES // 2, "the killed gateway's devices reconnected elsewhere"
        for client, name in zip(clients, names):
            streams = client.streams
            assert (streams.duplicates, streams.skipped, streams.gaps) == (0, 0, 0), name
            assert streams.last.get("d", 0) == pushed[name], (name, streams.last, pushed[name])
            assert streams.last.get("t:news", 0) == topic_pushed[0], (name, streams.last)
        assert sum(pushed.values()) > 50 and topic_pushed[0] > 10
    finally:
        for service in reversed(started):
            service.stop()


@pytest.mark.timeout(60)
def test_a_device_offline_for_a_burst_within_its_bound_gets_it_all_once(tmp_path, brokers):
    started = []
    s = System(tmp_path, service_starter(tmp_path, started), env_extra={"OFFLINE_BOUND": "100"}, **brokers)
    try:
        s.start_gateway("g1")
        s.start_api()
        token = s.register("phone", ["news"])

        async def scenario():
            client = DeviceClient(token, s.urls())
            for round_ in range(2):
                stop = asyncio.Event()
                client.ready.clear()
                task = asyncio.create_task(client.run(stop))
                await asyncio.wait_for(client.ready.wait(), 15)
                s.push(device="phone", body="online")
                await asyncio.sleep(0.3)
                stop.set()
                await task
                for n in range(40):   # offline: a burst smaller than the bound, to it and to its topic
                    s.push(device="phone", body=f"burst {n}")
                    s.push(topic="news", body=f"news {n}")
            stop = asyncio.Event()
            client.ready.clear()
            task = asyncio.create_task(client.run(stop))
            await asyncio.wait_for(client.ready.wait(), 15)
            deadline = time.monotonic() + 15
            while client.streams.last.get("d") != 82 or client.streams.last.get("t:news") != 80:
                assert time.monotonic() < deadline, client.streams.last
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            stop.set()
            await task
            return client
        client = asyncio.run(scenario())
        assert client.streams.received == 162
        assert (client.streams.duplicates, client.streams.skipped, client.streams.gaps) == (0, 0, 0)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.mark.timeout(90)
def test_redis_killed_mid_run_costs_pushes_a_second_and_loses_nothing(tmp_path, start_server):
    """The broker SIGKILLed: pushes still answer 202 (stored, ``"routed": false``) within about two
    seconds; the gateway's safety net delivers them; after the restart they are routed again."""
    started = []
    with start_server("redis") as redis_server:
        s = System(tmp_path, service_starter(tmp_path, started), broker_url=redis_server.url)
        try:
            s.start_gateway("g1")
            s.start_api()
            token = s.register("phone")
            answers = []

            async def scenario():
                stop = asyncio.Event()
                client = DeviceClient(token, s.urls())
                task = asyncio.create_task(client.run(stop))
                await asyncio.wait_for(client.ready.wait(), 15)
                for phase in ("before", "down", "after"):
                    if phase == "down":
                        redis_server.kill()
                    elif phase == "after":
                        redis_server.start()
                    for n in range(5):
                        began = time.monotonic()
                        answer = await asyncio.to_thread(s.push, device="phone", body=f"{phase} {n}")
                        answers.append((phase, answer["routed"], time.monotonic() - began))
                deadline = time.monotonic() + 20
                while client.streams.last.get("d") != 15:
                    assert time.monotonic() < deadline, client.streams.last
                    await asyncio.sleep(0.05)
                stop.set()
                await task
                return client
            client = asyncio.run(scenario())
        finally:
            for service in reversed(started):
                service.stop()
    assert all(routed for phase, routed, _ in answers if phase == "before")
    assert not any(routed for phase, routed, _ in answers if phase == "down")
    assert max(seconds for phase, _, seconds in answers if phase == "down") < 5
    assert answers[-1][1], "routed again once Redis is back"
    assert client.streams.received == 15 and client.streams.duplicates == 0 and client.streams.skipped == 0
