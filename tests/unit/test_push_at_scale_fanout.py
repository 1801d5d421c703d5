"""The fan-out's fast paths, without a socket: the gateway's batch frames (a topic's waiting messages
in one frame, each number still checked by the device) and the lean device's frame reader."""
import json
import time

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from demos.push_at_scale.gateway import Gateway
from demos.push_at_scale.store import URGENT, Store
from load.push_at_scale.lean import LeanDevice


class FakeTransport:
    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(data)

    def is_closing(self):
        return False


class FakeConnection:
    """What ``Gateway.write_all`` touches of a ``websockets`` server connection."""
    def __init__(self, device):
        self.transport, self.device = FakeTransport(), device
        self.protocol = type("P", (), {"state": State.OPEN})()

    def frames(self) -> list[dict]:
        texts = []
        for data in self.transport.written:
            length, head = data[1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(data[2:4], "big"), 4
            texts.append(json.loads(data[head:head + length]))
        return texts


@pytest.fixture
def gateway_with_subscriber(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'push.db'}")
    gateway = Gateway("g1", store, None, send_path="transport", batch=3)
    topic = gateway.topic("t:news")
    device = type("D", (), {"sent": {"t:news": 0}, "pulled": {"t:news": 0}})()
    ws = FakeConnection(device)
    topic.live.add(ws)
    return gateway, store, ws, device


def items(messages):
    return [[m.stream, m.seq, m.ts, m.body, m.flags] for m in messages]


def test_a_topics_waiting_messages_go_out_in_frames_of_at_most_batch(gateway_with_subscriber):
    gateway, store, ws, device = gateway_with_subscriber
    messages = [store.append(["t:news"], f"m{n}", flags=URGENT)[0] for n in range(1, 6)]
    gateway.on_items(items(messages))
    frames = ws.frames()
    assert [f["type"] for f in frames] == ["msgs", "msgs"]
    assert [[m["seq"] for m in f["msgs"]] for f in frames] == [[1, 2, 3], [4, 5]]
    assert device.sent["t:news"] == device.pulled["t:news"] == 5
    assert gateway.stats["deliveries.topic"] == 5 and gateway.stats["topic.frames"] == 2
    gateway.on_items(items(messages[3:]))        # numbers sent already: dropped, never sent twice
    gateway.on_items(items([store.append(["t:news"], "m6", flags=URGENT)[0]]))
    assert [f.get("seq") for f in ws.frames()[2:]] == [6] and ws.frames()[2]["type"] == "msg"


def test_a_number_that_skips_ahead_sends_what_waits_first_then_reads_the_store(gateway_with_subscriber):
    gateway, store, ws, _ = gateway_with_subscriber
    messages = [store.append(["t:news"], f"m{n}", flags=URGENT)[0] for n in range(1, 5)]
    gateway.on_items(items([messages[0], messages[1], messages[3]]))   # 3 lost on the way
    seqs = [m["seq"] for f in ws.frames() for m in (f["msgs"] if f["type"] == "msgs" else [f])]
    assert seqs == [1, 2, 3, 4]


def frame(text: str, **options) -> bytes:
    return Frame(Opcode.TEXT, text.encode(), **options).serialize(mask=False, extensions=[])


def test_the_lean_device_checks_every_number_of_frames_split_anywhere():
    got = []
    device = LeanDevice("token", ["ws://127.0.0.1:1"], on_message=lambda client, message: got.append(message["seq"]))
    device.fast = True
    now = time.time()
    wire = (frame(json.dumps({"type": "msg", "s": "t:news", "seq": 1, "ts": now, "body": "x" * 200}))
            + frame(json.dumps({"type": "msgs", "s": "t:news", "msgs": [{"seq": 2, "ts": now, "body": "y"},
                                                                         {"seq": 2, "ts": now, "body": "y"},
                                                                         {"seq": 4, "ts": now, "body": "z"}]}))
            + frame('{"type":"ready"}'))
    for cut in range(0, len(wire), 7):
        device.data_received(wire[cut:cut + 7])
    assert got == [1, 2, 4] and device.ready.is_set()
    assert (device.streams.duplicates, device.streams.skipped) == (1, 1)


def test_the_lean_device_hands_anything_but_a_final_text_frame_back_to_the_parser():
    device = LeanDevice("token", ["ws://127.0.0.1:1"])
    device.fast = True
    assert device.read_frames(frame('{"type":"ready"}')) == b""
    rest = device.read_frames(frame("part", fin=False) + frame("x"))
    assert rest.startswith(bytes([0x01])) and device.fast is False
