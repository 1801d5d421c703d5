"""Long polling, the article's channel: a held request answers within milliseconds of a send, and a
message sent while the client is between two polls waits in the pool for the next one."""
import time
from concurrent.futures import ThreadPoolExecutor

from demos.realtime_delivery.clients import Http, next_after


def wait_held(http: Http, count: int) -> None:
    deadline = time.monotonic() + 5
    while http.stats().get("long_polls_held", 0) < count:
        assert time.monotonic() < deadline, "the long poll was never held"
        time.sleep(0.01)


def test_a_held_long_poll_answers_within_milliseconds_of_a_send(realtime):
    server = realtime()
    http = Http(server.url)
    http.create("general")
    with ThreadPoolExecutor(max_workers=1) as pool:
        latencies = []
        for n in range(5):
            held = pool.submit(http.long_poll, "general", n, 10)
            wait_held(http, 1)
            sent = time.perf_counter()
            http.send("general", "ann", f"m{n + 1}")
            answer = held.result(timeout=5)
            latencies.append(time.perf_counter() - sent)
            assert [m["seq"] for m in answer["messages"]] == [n + 1]
    # socket-like: the answer follows the send at once (the send's own round trip included)
    assert sorted(latencies)[2] < 0.1, latencies


def test_messages_sent_between_two_polls_are_not_lost(realtime):
    server = realtime()
    http = Http(server.url)
    http.create("general")
    http.send("general", "ann", "m1")
    first = http.long_poll("general", 0, timeout_s=10)
    assert [m["body"] for m in first["messages"]] == ["m1"]
    after = next_after(first, 0)
    for body in ("m2", "m3", "m4"):       # the client is between polls: no request is open
        http.send("general", "ann", body)
    started = time.monotonic()
    second = http.long_poll("general", after, timeout_s=10)
    assert time.monotonic() - started < 1, "the pool was not empty: the poll must not hold"
    assert [(m["seq"], m["body"]) for m in second["messages"]] == [(2, "m2"), (3, "m3"), (4, "m4")]
    assert second["last_seq"] == 4 and second["gap"] is False


def test_an_idle_long_poll_ends_empty_at_the_hold_limit(realtime):
    server = realtime(env={"LONG_POLL_TIMEOUT": "1"})
    http = Http(server.url)
    http.create("general")
    for asked, expected in ((None, 1.0), (0.2, 0.2), (50, 1.0)):   # the server's cap wins over a longer ask
        started = time.monotonic()
        answer = http.long_poll("general", 0, timeout_s=asked)
        elapsed = time.monotonic() - started
        assert answer == {"messages": [], "last_seq": 0, "gap": False, "first_seq": None}
        assert expected - 0.05 <= elapsed < expected + 0.5, (asked, elapsed)
