"""Chapter 2's store on a real PostgreSQL (``DATABASE_URL``, shared by API and gateway processes on
several machines): the SQLite tests of numbering, bound, TTL and acks run again on it, and then the
races SQLite's one write lock never shows: concurrent appends to overlapping device lists number
every stream 1, 2, 3... with no hole, no repeat and no deadlock (row locks in sorted order), and
racing acks keep the largest."""
import random

import pytest

from demos.push_at_scale.routing import StoreRoutes
from demos.push_at_scale.store import Store
from tests.unit.test_message_queues_store import race   # threads released at once, each its own connection
# the same tests as on SQLite, collected here with this module's ``store`` fixture
from tests.unit.test_push_at_scale_store import (  # noqa: F401
    test_acks_are_cumulative_and_never_move_back, test_each_stream_numbers_its_own_messages,
    test_expired_messages_are_a_gap_too, test_past_the_bound_a_reader_is_told_of_the_gap)

pytestmark = pytest.mark.servers

WRITERS, APPENDS, DEVICES = 8, 40, 12


@pytest.fixture
def store(postgres_database_url):
    return Store(postgres_database_url, bound=3, ttl_s=60)


def test_concurrent_appends_to_overlapping_lists_number_every_stream_without_a_hole(postgres_database_url):
    store = Store(postgres_database_url, bound=10_000)
    devices = [f"d:dev{n}" for n in range(DEVICES)]

    def writer(i):
        rng, numbers = random.Random(i), []
        for _ in range(APPENDS):
            streams = rng.sample(devices, rng.randint(2, DEVICES))   # random order: the store sorts its locks
            stored = store.append(streams, f"from {i}")
            assert [m.stream for m in stored] == streams              # answered in the caller's order
            numbers.extend((m.stream, m.seq) for m in stored)
        return numbers

    numbers = [pair for batch in race(writer, WRITERS) for pair in batch]
    for stream in devices:
        seqs = sorted(seq for name, seq in numbers if name == stream)
        assert seqs == list(range(1, len(seqs) + 1)), stream         # no repeat, no hole
        assert store.last_seq(stream) == len(seqs)
        assert [m.seq for m in store.after(stream, 0, limit=10_000).messages] == seqs
    assert store.last_seqs(devices + ["d:nobody"]) == {s: store.last_seq(s) for s in devices}


def test_racing_acks_from_two_gateways_keep_the_largest(store):
    def gateway(i):
        rng = random.Random(i)
        for seq in range(1, 60):
            rows = [(f"dev{n}", "d", seq + rng.randint(-5, 5)) for n in range(DEVICES)]
            rng.shuffle(rows)
            store.ack(rows)
        return True

    assert race(gateway, 4) == [True] * 4
    for n in range(DEVICES):
        assert store.acked(f"dev{n}")["d"] >= 59


def test_routes_and_registrations_live_in_the_shared_database(store):
    store.register([f"dev{n}" for n in range(600)], ["news"])   # past one IN list's 500
    assert store.unknown_devices(["dev1", "dev599", "ghost"]) == ["ghost"] and store.topic_known("news")
    routes = StoreRoutes(store)
    for n in range(600):
        routes.set(f"dev{n}", "g1" if n % 2 else "g2")
    routes.clear(["dev1", "dev2"], "g1")                          # dev2 is g2's: kept
    found = routes.lookup([f"dev{n}" for n in range(600)])
    assert len(found) == 599 and "dev1" not in found and found["dev2"] == "g2"
    routes.alive("g1")
    assert routes.gateways() == ["g1"]
