"""The one Server-Sent Events line parser of the test client and the Locust receivers."""
from demos.realtime_delivery.sse_parser import SseParser


def feed_all(parser: SseParser, text: str) -> list[dict]:
    return [event for line in text.splitlines(keepends=True) if (event := parser.feed(line)) is not None]


def test_events_ids_names_and_multi_line_data():
    parser = SseParser()
    events = feed_all(parser, 'retry: 2000\r\nid: 4\r\ndata: {"seq": 4,\r\ndata:  "body": "x"}\r\n\r\n'
                              'event: gap\ndata: {"first_seq": 7}\n\n')
    assert events == [{"event": "message", "id": "4", "data": '{"seq": 4,\n "body": "x"}'},
                      {"event": "gap", "id": None, "data": '{"first_seq": 7}'}]
    assert parser.retry_ms == 2000 and parser.last_event_id == "4"   # an event without id keeps the last one


def test_comments_are_heartbeats_and_an_event_without_data_is_not_dispatched():
    parser = SseParser(last_event_id="9")
    assert feed_all(parser, ": keep-alive\n\nid: 10\nevent: message\n\n") == [
        {"event": "heartbeat", "id": None, "data": None}]
    assert parser.last_event_id == "9"
    assert feed_all(parser, "data: 1\n") == [] and parser.feed("") == {"event": "message", "id": None, "data": "1"}
