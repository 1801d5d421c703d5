"""The chapter 1 message pool (demos.realtime_delivery.store): numbering, the window, the gap marker."""
import json
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from demos.realtime_delivery.store import AfterBeyondLast, Store, UnknownConversation


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'messages.db'}"


def test_numbers_start_at_one_and_follow_each_other(url):
    store = Store(url)
    assert store.create("general") is True
    assert store.create("general") is False
    assert [store.append("general", "ann", f"m{i}").seq for i in range(3)] == [1, 2, 3]
    store.create("other")
    assert store.append("other", "bob", "first").seq == 1   # numbered per conversation
    batch = store.read_after("general", 1)
    assert [(m.seq, m.body) for m in batch.messages] == [(2, "m1"), (3, "m2")]
    assert (batch.last_seq, batch.gap, batch.first_seq) == (3, False, None)


def test_unknown_conversation_and_a_number_never_sent(url):
    store = Store(url)
    with pytest.raises(UnknownConversation) as unknown:
        store.append("nope", "ann", "hi")
    assert unknown.value.args == ("nope",)             # the 404 names it
    with pytest.raises(UnknownConversation) as unknown:
        store.read_after("nope", 0)
    assert unknown.value.args == ("nope",)
    store.create("general")
    store.append("general", "ann", "hi")
    with pytest.raises(AfterBeyondLast) as beyond:
        store.read_after("general", 2)
    assert (beyond.value.after, beyond.value.last_seq) == (2, 1)
    assert str(beyond.value) == "after=2 is beyond the conversation's last message (1)"


def test_threads_sharing_a_store_get_distinct_gapless_numbers(url):
    store = Store(url)
    store.create("general")
    with ThreadPoolExecutor(max_workers=8) as pool:
        seqs = list(pool.map(lambda i: store.append("general", f"t{i % 8}", f"m{i}").seq, range(400)))
    assert sorted(seqs) == list(range(1, 401))
    stored = store.read_after("general", 0).messages
    assert [m.seq for m in stored] == list(range(1, 401))
    assert {m.body for m in stored} == {f"m{i}" for i in range(400)}


def _append_many(url: str, worker: int, count: int, results, go) -> None:
    store = Store(url)
    go.wait(30)                                   # all at once: the writes really race
    try:
        results.put([store.append("general", f"p{worker}", f"p{worker}-{i}").seq for i in range(count)])
    except Exception as error:                    # e.g. "database is locked": the test says so
        results.put(repr(error))


def test_processes_writing_one_database_get_distinct_gapless_numbers(url):
    Store(url).create("general")
    context = multiprocessing.get_context("spawn")   # no state inherited: each opens its own connection
    results, go = context.Queue(), context.Event()
    workers = [context.Process(target=_append_many, args=(url, w, 200, results, go)) for w in range(4)]
    for worker in workers:
        worker.start()
    go.set()
    per_worker = [results.get(timeout=40) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert not [seqs for seqs in per_worker if isinstance(seqs, str)], per_worker
    for seqs in per_worker:
        assert seqs == sorted(seqs)              # each writer sees its own messages in order
    assert sorted(s for seqs in per_worker for s in seqs) == list(range(1, 801))
    stored = Store(url).read_after("general", 0).messages
    assert [m.seq for m in stored] == list(range(1, 801))
    for w in range(4):                          # and in the order it sent them
        assert [m.body for m in stored if m.sender == f"p{w}"] == [f"p{w}-{i}" for i in range(200)]


def test_window_keeps_the_last_messages_and_marks_the_gap(url):
    store = Store(url, window_length=5)
    store.create("general")
    for i in range(1, 13):
        store.append("general", "ann", f"m{i}")
    behind = store.read_after("general", 3)     # 4..7 were pruned: say so, then give 8..12
    assert (behind.gap, behind.first_seq, behind.last_seq) == (True, 8, 12)
    assert [m.seq for m in behind.messages] == [8, 9, 10, 11, 12]
    just_in = store.read_after("general", 7)    # 8 is the first kept: nothing missing
    assert (just_in.gap, [m.seq for m in just_in.messages]) == (False, [8, 9, 10, 11, 12])
    assert store.read_after("general", 10, limit=1).messages[0].seq == 11


def test_window_age_prunes_the_oldest_and_numbers_are_never_reused(url):
    store = Store(url, window_age_s=60)
    store.create("general")
    for i, at in enumerate([1000, 1010, 1020, 1100], start=1):
        store.append("general", "ann", f"m{i}", now=at)
    assert store.prune(now=1075) == 2           # 1000 and 1010 are older than 60 s at 1075
    batch = store.read_after("general", 0)
    assert (batch.gap, batch.first_seq, [m.seq for m in batch.messages]) == (True, 3, [3, 4])
    assert store.prune(now=10_000) == 2         # everything aged out
    empty = store.read_after("general", 1)
    assert (empty.gap, empty.first_seq, empty.messages, empty.last_seq) == (True, 5, [], 4)
    assert store.read_after("general", 4).gap is False   # a client that had it all misses nothing
    assert store.append("general", "ann", "m5").seq == 5   # the counter survives an empty window


def test_messages_survive_reopening(url):
    store = Store(url)
    store.create("general")
    store.append("general", "ann", "kept", client_ts=12.5)
    store.close()
    [message] = Store(url).read_after("general", 0).messages
    assert (message.seq, message.sender, message.body, message.client_ts) == (1, "ann", "kept", 12.5)


def test_a_resend_with_the_same_client_id_is_stored_once_and_answers_the_original(url):
    store = Store(url)
    store.create("general")
    store.create("other")
    first = store.append("general", "ann", "hello", client_ts=1.5, now=100.0, client_id="k1")
    assert (first.seq, first.repeated) == (1, False)
    again = store.append("general", "ann", "hello", client_ts=9.0, now=200.0, client_id="k1")
    assert again.repeated is True
    assert (again.seq, again.sender, again.body, again.sent_at, again.client_ts) == (1, "ann", "hello", 100.0, 1.5)
    assert again == first                                          # the original, as stored
    assert store.last_seq("general") == 1                          # no number used up
    # the key is (conversation, sender, id): anything else is another message
    assert store.append("general", "bob", "hello", client_id="k1").seq == 2
    assert store.append("other", "ann", "hello", client_id="k1").seq == 1
    assert store.append("general", "ann", "hello", client_id="k2").seq == 3
    assert store.append("general", "ann", "hello").seq == 4        # no id: every send is new
    assert store.append("general", "ann", "hello").seq == 5
    assert store.append("general", "ann", "hello", client_id="k1").seq == 1
    assert [m.seq for m in store.read_after("general", 0).messages] == [1, 2, 3, 4, 5]


def test_an_id_is_remembered_while_its_message_is_in_the_window(url):
    store = Store(url, window_length=3)
    store.create("general")
    store.append("general", "ann", "m1", client_id="k1")
    store.append("general", "ann", "m2")
    store.append("general", "ann", "m3")
    assert store.append("general", "ann", "m1", client_id="k1").seq == 1   # 1..3 kept
    store.append("general", "ann", "m4")                                   # 1 leaves the window
    assert store.append("general", "ann", "m1", client_id="k1").seq == 5
    assert store.db.execute("SELECT seq FROM sends").fetchall() == [(5,)]


def test_prune_by_age_forgets_the_ids_too(url):
    store = Store(url, window_age_s=60)
    store.create("general")
    store.append("general", "ann", "old", now=1000, client_id="old")
    store.append("general", "ann", "new", now=1100, client_id="new")
    assert store.prune(now=1061) == 1
    assert store.db.execute("SELECT client_id FROM sends").fetchall() == [("new",)]
    assert store.append("general", "ann", "new", now=1101, client_id="new").repeated
    assert store.append("general", "ann", "old", now=1102, client_id="old").seq == 3


def test_window_length_is_exact(url):
    store = Store(url, window_length=5)
    store.create("general")
    for i in range(1, 6):
        store.append("general", "ann", f"m{i}")
    assert [m.seq for m in store.read_after("general", 0).messages] == [1, 2, 3, 4, 5]   # exactly full
    store.append("general", "ann", "m6")
    batch = store.read_after("general", 0)
    assert ([m.seq for m in batch.messages], batch.gap, batch.first_seq) == ([2, 3, 4, 5, 6], True, 2)
    assert store.read_after("general", 1).gap is False                                 # had 1: nothing missed
    assert store.read_after("general", 6).messages == [] and store.read_after("general", 6).last_seq == 6


def test_prune_without_a_clock_uses_now_and_counts_every_conversation(url):
    store = Store(url, window_age_s=60)
    for conversation in ("a", "b"):
        store.create(conversation)
        store.append(conversation, "ann", "old", now=time.time() - 600)
        store.append(conversation, "ann", "older still", now=time.time() - 500)
        store.append(conversation, "ann", "new")
    assert store.prune() == 4
    assert [m.body for m in store.read_after("a", 0).messages] == ["new"]


def test_prune_keeps_a_message_exactly_at_the_cutoff(url):
    store = Store(url, window_age_s=60)
    store.create("general")
    store.append("general", "ann", "at the edge", now=1000)
    assert store.prune(now=1060) == 0                # exactly 60 s old: still in the window
    assert store.prune(now=1060.001) == 1


def test_a_window_must_hold_something(url):
    for length, age in ((0, 60), (1, 0), (-1, 60), (1, -1)):
        with pytest.raises(ValueError):
            Store(url, window_length=length, window_age_s=age)
    assert Store(url, window_length=1, window_age_s=0.001).window_length == 1


def test_last_seq_and_exists(url):
    store = Store(url)
    assert store.last_seq("general") is None and not store.exists("general")
    store.create("general")
    assert store.last_seq("general") == 0 and store.exists("general")
    store.append("general", "ann", "hi")
    assert store.last_seq("general") == 1
    names = [f"c{i}" for i in range(1200)]           # more than one chunk of parameters
    for name in names[:3] + names[-2:]:
        store.create(name)
    assert store.last_seqs(names + ["general"]) == {**{n: 0 for n in names[:3] + names[-2:]}, "general": 1}


def test_a_message_serializes_once_as_the_clients_get_it(url):
    store = Store(url)
    store.create("general")
    message = store.append("general", "ann", "héllo \"quoted\"", client_ts=2.5, now=10.0)
    assert json.loads(message.json) == {"seq": 1, "sender": "ann", "body": "héllo \"quoted\"", "sent_at": 10.0,
                                        "client_ts": 2.5}
    assert "é" in message.json                        # UTF-8 as it is, not \\u escapes
    batch = store.read_after("general", 0)
    assert json.loads(batch.json) == batch.as_dict() == {
        "messages": [message.as_dict()], "last_seq": 1, "gap": False, "first_seq": None}


def test_sqlite_urls():
    from demos.realtime_delivery.store import sqlite_path
    assert sqlite_path("sqlite:///var/x.db") == "var/x.db"
    assert sqlite_path("sqlite:////tmp/x.db") == "/tmp/x.db"
    with pytest.raises(SystemExit, match="is not supported"):
        sqlite_path("postgresql://localhost/x")


def test_a_number_is_read_and_written_under_one_write_lock(url):
    """``append`` reads the counter and writes it back in one write transaction (BEGIN IMMEDIATE):
    another connection's append that comes in between waits for it, instead of making it fail (or,
    with a weaker rule, reuse the number). The trace callback holds the first append between its
    read and its write while the second one tries."""
    first, second = Store(url), Store(url)
    first.create("general")
    other_done, other_seqs, held = threading.Event(), [], []

    def other() -> None:
        other_seqs.append(second.append("general", "bob", "in between").seq)
        other_done.set()

    def trace(sql: str) -> None:
        if sql.upper().startswith("UPDATE CONVERSATIONS") and not held:
            held.append(sql)
            threading.Thread(target=other).start()
            other_done.wait(0.5)           # the other append cannot finish while this one holds the lock

    first.db.set_trace_callback(trace)
    try:
        seq = first.append("general", "ann", "first").seq
    finally:
        first.db.set_trace_callback(None)
    assert other_done.wait(10)
    assert (seq, other_seqs, len(held)) == (1, [2], 1)
