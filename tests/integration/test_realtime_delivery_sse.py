"""Server-Sent Events: a stream of numbered events that resumes from ``Last-Event-ID``."""
import time

from demos.realtime_delivery.clients import Http, Sse


def test_sse_streams_and_resumes_from_last_event_id_after_a_drop(realtime):
    server = realtime(env={"SSE_HEARTBEAT_S": "0.3"})
    http = Http(server.url)
    http.create("general")
    for body in ("m1", "m2", "m3"):
        http.send("general", "ann", body)
    sse = Sse(server.url, "general", after=0)
    assert sse.status == 200 and sse.response.headers["Content-Type"].startswith("text/event-stream")
    events = sse.events()
    got = [next(events) for _ in range(3)]
    assert [(e["event"], e["id"], e["data"]["body"]) for e in got] == [
        ("message", "1", "m1"), ("message", "2", "m2"), ("message", "3", "m3")]
    assert sse.retry_ms == 1000
    http.send("general", "ann", "m4")
    assert next(events)["data"]["seq"] == 4            # live
    sse.close()                                        # the connection drops ...
    for body in ("m5", "m6"):                          # ... and messages keep coming
        http.send("general", "ann", body)
    # the browser reconnects with the last id it saw; Last-Event-ID wins over ?after=0
    again = Sse(server.url, "general", after=0, last_event_id=sse.last_event_id)
    events = again.events()
    assert [next(events)["data"]["body"] for _ in range(2)] == ["m5", "m6"]
    http.send("general", "ann", "m7")
    assert next(events)["id"] == "7"
    again.close()


def test_sse_sends_heartbeats_while_idle(realtime):
    server = realtime(env={"SSE_HEARTBEAT_S": "0.2"})
    http = Http(server.url)
    http.create("general")
    sse = Sse(server.url, "general", after=0, timeout_s=5)
    started, lines = time.monotonic(), []
    while len([line for line in lines if line.startswith(b": heartbeat")]) < 3:
        assert time.monotonic() - started < 5, f"no three heartbeats within 5 s: {lines}"
        lines.append(sse.response.readline())
    assert time.monotonic() - started < 2
    assert Http(server.url).stats()["sse_streams"] == 1
    sse.close()


def test_the_locust_sse_receivers_parse_the_stream_they_measure(tmp_path):
    """The locustfile's SseReceiver reads the stream with the client's parser (sse_parser): every
    message it receives is reported as a delivery, in order, none lost."""
    from load.harness import Harness
    from load.realtime_delivery import scenarios

    harness = Harness("01-realtime-delivery", "smoke", 1, tmp_path, "check")
    with harness.run("sse") as run:
        server = scenarios.start_server(run)
        # 6 s, not 3: on a busy machine Locust's start alone can take seconds of a short run
        scenarios.drive(run, server, "sse", receivers=4, conversations=1, rate=10, seconds=6)
    by_name = run.locust_result.summary["by_name"]
    assert by_name.get("deliver sse", {}).get("requests", 0) >= 20, by_name
    assert "order sse" not in by_name and run.locust_result.summary["failures"] == 0
