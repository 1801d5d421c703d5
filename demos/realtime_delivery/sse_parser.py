"""Server-Sent Events, parsed one line at a time: the one parser of the test client and the load.

Pure: it reads no socket and needs nothing, so the blocking client (``clients.Sse``) and the
gevent load (``load/realtime_delivery/locustfile.py``) both feed it the lines they read::

    parser = SseParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None and event["event"] != "heartbeat":
            handle(event["event"], json.loads(event["data"]))

Per the specification: fields are ``name: value`` (one space after the colon is dropped), a
blank line ends an event, an event without ``data`` is not dispatched, several ``data`` lines
join with newlines, a line starting with ``:`` is a comment (the server's heartbeat), and
``retry`` sets the reconnection delay.
"""
from typing import Optional


class SseParser:
    def __init__(self, last_event_id: Optional[str] = None):
        self.last_event_id = last_event_id         # what a browser would send on reconnecting
        self.retry_ms: Optional[int] = None
        self.fields: dict = {}
        self.data: list[str] = []

    def feed(self, line: str) -> Optional[dict]:
        """Take one line (its end of line may be there or not). Returns the event it completes,
        ``{"event", "id", "data"}`` with ``data`` as text, ``{"event": "heartbeat", "id": None,
        "data": None}`` for a comment line, or None."""
        line = line.rstrip("\r\n")
        if not line:
            event, data = self.fields, self.data
            self.fields, self.data = {}, []
            if not data:
                return None
            if "id" in event:
                self.last_event_id = event["id"]
            return {"event": event.get("event", "message"), "id": event.get("id"), "data": "\n".join(data)}
        if line.startswith(":"):
            return {"event": "heartbeat", "id": None, "data": None}
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self.data.append(value)
        elif field == "retry" and value.isdigit():
            self.retry_ms = int(value)
        elif field in ("id", "event"):
            self.fields[field] = value
        return None
