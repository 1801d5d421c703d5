"""A gateway refuses bad input with the right answer, and the other devices never notice: a bad or
expired token is a 401 before any WebSocket; a malformed frame 1007, a bad hello or ack 1008, a
flood 1008, an oversized frame 1009; a full gateway 503, and its device moves to the next address."""
import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from demos.push_at_scale import tokens
from demos.push_at_scale.device import DeviceClient
from load.push_at_scale.system import System, service_starter


@pytest.fixture
def system(tmp_path):
    started = []
    s = System(tmp_path, service_starter(tmp_path, started))
    s.start_gateway("g1")
    s.start_api()
    yield s
    for service in reversed(started):
        service.stop()


async def refused(url: str) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, open_timeout=10):
            pass
    return caught.value.response.status_code


async def closed_with(url: str, *frames) -> int:
    async with connect(url, open_timeout=10, max_size=2**20, compression=None) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            pass
        return ws.close_code


HELLO = json.dumps({"type": "hello", "after": {}, "heartbeat_s": 30})


def test_bad_input_gets_the_right_answer_and_the_others_keep_receiving(system):
    good, bad = system.register("good", ["news"]), system.register("bad", ["news"])
    base = system.urls()[0]
    url = f"{base}/ws?token={bad}"
    got = []

    async def scenario():
        stop = asyncio.Event()
        watcher = DeviceClient(good, [base], on_message=lambda c, f: got.append(f["seq"]))
        task = asyncio.create_task(watcher.run(stop))
        await asyncio.wait_for(watcher.ready.wait(), 10)
        codes = {
            "no token": await refused(f"{base}/ws"),
            "forged": await refused(f"{base}/ws?token={bad[:-3]}abc"),
            "expired": await refused(f"{base}/ws?token={tokens.issue('bad', ttl_s=-5)}"),
            "malformed JSON": await closed_with(url, "{nope"),
            "not a hello": await closed_with(url, json.dumps({"type": "ack"})),
            "after beyond": await closed_with(url, json.dumps({"type": "hello", "after": {"d": 99}})),
            "foreign stream": await closed_with(url, json.dumps({"type": "hello", "after": {"t:secret": 1}})),
            "ack beyond sent": await closed_with(url, HELLO, json.dumps({"type": "ack", "acks": {"d": 7}})),
            "oversized": await closed_with(url, HELLO, "x" * 10_000),
            "flood": await closed_with(url, HELLO, *['{"type":"hb"}'] * 200),
            "binary": await closed_with(url, HELLO, b"\x00\x01"),
            "bad heartbeat": await closed_with(url, HELLO, json.dumps({"type": "hb", "next_s": -1})),
        }
        for n in range(3):
            system.push(topic="news", body=f"n{n}")
        deadline = asyncio.get_running_loop().time() + 10
        while len(got) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        return codes, watcher
    codes, watcher = asyncio.run(scenario())
    assert codes == {"no token": 401, "forged": 401, "expired": 401, "malformed JSON": 1007, "not a hello": 1008,
                     "after beyond": 1008, "foreign stream": 1008, "ack beyond sent": 1008, "oversized": 1009,
                     "flood": 1008, "binary": 1003, "bad heartbeat": 1008}
    assert got == [1, 2, 3] and watcher.connections == 1 and watcher.streams.duplicates == 0


def test_a_full_gateway_answers_503_and_the_device_moves_to_its_next_address(tmp_path):
    started = []
    s = System(tmp_path, service_starter(tmp_path, started))
    try:
        full = s.start_gateway("full", "--max-connections", "1")
        spare = s.start_gateway("spare")
        s.start_api()
        first, second = s.register("first"), s.register("second")

        async def scenario():
            stop = asyncio.Event()
            a, b = DeviceClient(first, [full, spare]), DeviceClient(second, [full, spare])
            tasks = [asyncio.create_task(a.run(stop))]
            await asyncio.wait_for(a.ready.wait(), 10)
            tasks.append(asyncio.create_task(b.run(stop)))
            await asyncio.wait_for(b.ready.wait(), 10)
            stop.set()
            await asyncio.gather(*tasks)
            return a, b
        a, b = asyncio.run(scenario())
        assert a.url == full and b.url == spare and b.closes["http.503"] == 1
    finally:
        for service in reversed(started):
            service.stop()
