"""Clients for each transport, written the way a client must behave to lose nothing.

The rule is the same for all four: remember N, the last sequence number you have; ask for (or
resume from) everything after N; after a gap marker, know that the messages up to ``first_seq - 1``
are gone and carry on from there. Blocking, standard library plus ``websocket-client``; used by the
tests and usable from a shell::

    from demos.realtime_delivery.clients import Http, Sse, Ws
    http = Http("http://127.0.0.1:8000"); http.create("general"); http.send("general", "ann", "hi")
    http.long_poll("general", after=0)
"""
import json
import struct
import urllib.error
import urllib.request
from http.client import HTTPConnection
from typing import Iterator, Optional
from urllib.parse import urlsplit

import websocket

from .sse_parser import SseParser


class HttpError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(f"HTTP {status}: {body.get('error', body)}")
        self.status, self.body = status, body


class Http:
    """The JSON API: create, send, short poll, long poll."""

    def __init__(self, base_url: str, timeout_s: float = 10.0):
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s

    def request(self, method: str, path: str, body=None, timeout_s: Optional[float] = None) -> tuple[int, dict]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.base_url + path, data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.load(error)

    def call(self, method: str, path: str, body=None, timeout_s: Optional[float] = None) -> dict:
        status, answer = self.request(method, path, body, timeout_s)
        if status >= 400:
            raise HttpError(status, answer)
        return answer

    def create(self, conversation: str) -> dict:
        return self.call("POST", "/api/conversations", {"id": conversation})

    def send(self, conversation: str, sender: str, body: str, client_ts: Optional[float] = None,
             id: Optional[str] = None) -> int:
        """The message's number. With ``id`` (the client's idempotency key), sending again after a
        lost answer is safe: the server stores it once and answers the original number."""
        message = {"sender": sender, "body": body}
        if client_ts is not None:
            message["client_ts"] = client_ts
        if id is not None:
            message["id"] = id
        return self.call("POST", f"/api/conversations/{conversation}/messages", message)["seq"]

    def short_poll(self, conversation: str, after: int) -> dict:
        return self.call("GET", f"/api/conversations/{conversation}/messages?after={after}")

    def long_poll(self, conversation: str, after: int, timeout_s: Optional[float] = None) -> dict:
        query = f"after={after}" + ("" if timeout_s is None else f"&timeout={timeout_s:g}")
        # the socket waits a little longer than the server holds the request
        return self.call("GET", f"/api/conversations/{conversation}/poll?{query}",
                         timeout_s=(timeout_s or 90) + 5)

    def stats(self) -> dict:
        return self.call("GET", "/stats")


def next_after(answer: dict, after: int) -> int:
    """N for the next poll, from a polling answer."""
    if answer["messages"]:
        return answer["messages"][-1]["seq"]
    if answer["gap"]:
        return answer["first_seq"] - 1
    return after


class Sse:
    """One Server-Sent Events stream (``sse_parser``): ``for event in stream.events(): ...``."""

    def __init__(self, base_url: str, conversation: str, after: Optional[int] = None,
                 last_event_id: Optional[str] = None, timeout_s: float = 10.0):
        address = urlsplit(base_url)
        self.connection = HTTPConnection(address.hostname, address.port, timeout=timeout_s)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        path = f"/api/conversations/{conversation}/events" + ("" if after is None else f"?after={after}")
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.parser = SseParser(last_event_id)

    @property
    def last_event_id(self) -> Optional[str]:
        """What a browser would send on reconnecting."""
        return self.parser.last_event_id

    @property
    def retry_ms(self) -> Optional[int]:
        return self.parser.retry_ms

    def error(self) -> dict:
        return json.loads(self.response.read())

    def events(self, heartbeats: bool = False) -> Iterator[dict]:
        """Each event as ``{"event", "id", "data"}`` (data parsed as JSON); heartbeats (comment
        lines) too, as ``{"event": "heartbeat"}``, if asked for. Ends when the server closes the stream."""
        while line := self.response.readline():
            event = self.parser.feed(line.decode("utf-8"))
            if event is None or (event["event"] == "heartbeat" and not heartbeats):
                continue
            if event["data"] is not None:
                event["data"] = json.loads(event["data"])
            yield event

    def close(self) -> None:
        self.connection.close()


class Closed(Exception):
    """The server closed the WebSocket with ``code``."""

    def __init__(self, code: Optional[int], reason: str = ""):
        super().__init__(f"closed with {code}: {reason}")
        self.code, self.reason = code, reason


class Ws:
    """A WebSocket client (websocket-client: one file descriptor, no compression)."""

    def __init__(self, ws_base_url: str, conversation: str, after: Optional[int] = 0,
                 timeout_s: float = 10.0, **options):
        self.ws = websocket.create_connection(f"{ws_base_url.rstrip('/')}/ws/{conversation}",
                                              timeout=timeout_s, **options)
        if after is not None:
            self.send_json({"after": after})

    def send_json(self, message) -> None:
        self.ws.send(json.dumps(message))

    def send_raw(self, data, opcode=websocket.ABNF.OPCODE_TEXT) -> None:
        self.ws.send(data, opcode)

    def send(self, sender: str, body: str, client_ts: Optional[float] = None, id=None) -> None:
        message = {"type": "send", "sender": sender, "body": body}
        if client_ts is not None:
            message["client_ts"] = client_ts
        if id is not None:
            message["id"] = id
        self.send_json(message)

    def receive(self) -> dict:
        """The next JSON frame; raises Closed when the server closes."""
        opcode, frame = self.ws.recv_data_frame(control_frame=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
            raise Closed(code, frame.data[2:].decode("utf-8", "replace"))
        return json.loads(frame.data)

    def close(self) -> None:
        self.ws.close(timeout=1)
