"""The store's sequence numbers, bound, TTL and acks; tokens; the device's stream check."""
import time

import pytest

from demos.push_at_scale import tokens
from demos.push_at_scale.device import Streams
from demos.push_at_scale.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'push.db'}", bound=3, ttl_s=60)


def test_each_stream_numbers_its_own_messages(store):
    assert [m.seq for m in store.append(["d:a", "d:b"], "x")] == [1, 1]
    assert [m.seq for m in store.append(["d:a"], "y")] == [2]
    batch = store.after("d:a", 0)
    assert [(m.seq, m.body) for m in batch.messages] == [(1, "x"), (2, "y")] and batch.gap is None


def test_past_the_bound_a_reader_is_told_of_the_gap(store):
    for n in range(5):
        store.append(["d:a"], f"m{n}")
    batch = store.after("d:a", 0)
    assert [m.seq for m in batch.messages] == [3, 4, 5] and batch.gap == (1, 2)
    assert store.after("d:a", 2).gap is None and store.after("d:a", 5).messages == []


def test_expired_messages_are_a_gap_too(store):
    store.append(["d:a"], "old", ts=time.time() - 120)
    store.append(["d:a"], "new")
    batch = store.after("d:a", 0)
    assert [m.body for m in batch.messages] == ["new"] and batch.gap == (1, 1)
    assert store.prune() == 1


def test_acks_are_cumulative_and_never_move_back(store):
    store.ack([("dev", "d:dev", 5), ("dev", "t:news", 2)])
    store.ack([("dev", "d:dev", 3)])
    assert store.acked("dev") == {"d:dev": 5, "t:news": 2}


def test_tokens_carry_the_device_and_its_topics_and_refuse_tampering():
    key = b"k"
    token = tokens.issue("d1", ["news"], ttl_s=60, key=key)
    assert tokens.verify(token, key=key).topics == ("news",)
    payload, signature = token.split(".")
    forged = tokens.issue("d2", ["news"], ttl_s=60, key=b"other").split(".")[0] + "." + signature
    for bad, reason in [(forged, "signature"), (token, "signature"), ("nodot", "malformed"), ("a.b.c", "malformed"),
                        (tokens.issue("d1", ttl_s=-1, key=key), "expired")]:
        with pytest.raises(tokens.BadToken, match=reason):
            tokens.verify(bad, key=key if bad is not token else b"wrong")


def test_the_device_counts_duplicates_and_skips_and_accepts_a_gap():
    streams = Streams()
    assert [streams.take("d", n) for n in (1, 2, 2, 5)] == [True, True, False, True]
    assert (streams.duplicates, streams.skipped, streams.received) == (1, 2, 3)
    streams.gap("t:x", 1, 9)
    assert streams.take("t:x", 10) and streams.skipped == 2 and streams.gaps == 1


def test_the_adaptive_heartbeat_doubles_until_a_connection_is_lost_then_keeps_the_last_good():
    from demos.push_at_scale.device import AdaptiveHeartbeat
    beat = AdaptiveHeartbeat(1, 16)
    assert [beat.survived() for _ in range(6)] == [2, 4, 8, 16, 16, 16]
    beat = AdaptiveHeartbeat(1, 16)
    beat.survived(), beat.survived()          # 4 s tried next
    assert beat.lost() == 2 and beat.survived() == 2 and beat.lost() == 2
