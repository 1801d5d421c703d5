"""WebSocket: ``ws://127.0.0.1:<ws-port>/ws/<cid>``, messages pushed the moment they are stored.

The protocol is the ``websockets`` library's sans-I/O ``ServerProtocol`` (it parses the handshake
and frames, answers pings and closes); the I/O is a gevent ``StreamServer``: one greenlet per
connection reads, and a second one exists only while the socket has more to take than it takes at
once. No permessage-deflate is offered (no ``extensions``): an idle connection costs about 12 KiB
(measured with 1,000) and one file descriptor.

The conversation, in frames of JSON text:
- client first: ``{"after": N}``, the last number it has (0 for none);
- server: what the client missed (``{"type": "gap", "first_seq": F, "last_seq": L}`` first if some
  of it was pruned), then ``{"type": "subscribed", "last_seq": M}``, then every new message as
  ``{"type": "message", "seq", "sender", "body", "sent_at", "client_ts"}``;
- client, any time after its first frame: ``{"type": "send", "sender", "body", "client_ts"?, "id"?}``;
  server: ``{"type": "ack", "seq": n}`` (with the client's ``id`` if it gave one) once stored.
  ``id`` is the client's idempotency key, the same as in the HTTP send: a resend with an id this
  sender used before in the conversation stores nothing and is acked with the original number
  (``"repeated": true``).

Fan-out writes one frame, serialized once per message, to each subscriber's socket if the socket
takes it at once, else into the subscriber's send buffer for its writer (``send_buffer``); the
publisher never waits. A client that does not read fast enough must not grow the server: once its unsent bytes would pass
``WS_MAX_PENDING_BYTES`` it is closed with 1013 ("try again later") and reconnects with its last
number. Close codes for bad input: 1008 unknown
conversation, a bad first frame or a bad message (JSON that fails a check: a lone surrogate, a
bad id, JSON nested too deep); 1007 malformed JSON or UTF-8; 1009 a frame over
``WS_MAX_FRAME_BYTES`` or a body over 4 KiB; 1003 a binary frame; 1011 a bug on our side (logged).
Any ``Origin`` is accepted (the demo listens on loopback); a public deployment would pass
``origins=[...]`` to ``ServerProtocol``.

Control frames are bounded like data frames: the pongs the protocol queues count against the same
``WS_MAX_PENDING_BYTES`` (a client that pings and never reads is closed with 1013), and a client
sending more than ``MAX_PINGS_PER_S`` pings a second is closed with 1008. The reader takes
``READ_BYTES`` at a time and yields after each read, so a client that floods the socket cannot keep
this process from serving everyone else (``/health`` included). A client that resets the
connection is written to no more (``SendBuffer.broken``): a replay to it stops at once.
"""
import json
import logging
import re
import socket
import time
from functools import lru_cache
from typing import Optional

import gevent
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol

from . import inputs
from .hub import Hub
from .send_buffer import SendBuffer
from .settings import Settings
from .store import AfterBeyondLast, Message, UnknownConversation

PATH = re.compile(r"/ws/([A-Za-z0-9_-]{1,64})")   # re.fullmatch: no trailing newline
CLOSE_TIMEOUT_S = 5.0      # after our close frame, how long the client has before the socket is cut
REPLAY_BATCH = 100         # messages per store read while catching a client up
READ_BYTES = 8192          # per recv: 64 KiB of tiny frames would take ~80 ms of parsing at once
MAX_PINGS_PER_S = 100      # more is a flood: close 1008
ABUSIVE_LINGER_S = 0.25    # a flooding client's input is dropped unparsed this long before the socket closes
LOG = logging.getLogger("realtime_delivery.websocket")


class HelloTimeout(Exception):
    pass


def text_frame(payload: str) -> bytes:
    return Frame(Opcode.TEXT, payload.encode("utf-8")).serialize(mask=False)


@lru_cache(maxsize=64)
def message_frame(message: Message) -> bytes:
    """The frame for a message, built once and written to every subscriber."""
    return text_frame('{"type":"message",' + message.json[1:])


class Connection:
    __slots__ = ("sock", "hub", "settings", "protocol", "send_buffer", "closer", "conversation", "after",
                 "sent_seq", "fragments", "pings", "pings_since", "abusive")

    def __init__(self, sock: socket.socket, hub: Hub, settings: Settings):
        self.sock, self.hub, self.settings = sock, hub, settings
        self.protocol = ServerProtocol(max_size=settings.ws_max_frame_bytes, logger=LOG)
        self.send_buffer = SendBuffer(sock, hub.stats, settings.ws_max_pending_bytes)
        self.closer: Optional[gevent.Greenlet] = None
        self.conversation: Optional[str] = None
        self.after: Optional[int] = None    # from the client's first frame
        self.sent_seq = -1                  # the last message queued for the client once subscribed
        self.fragments: Optional[list] = None
        self.pings, self.pings_since = 0, time.monotonic()   # pings counted in the current second
        self.abusive = False   # closed for flooding: read nothing more from it

    # ---- reading: the connection's own greenlet

    def serve(self) -> None:
        stats = self.hub.stats
        stats["ws_open"] += 1
        stats["ws_connections"] += 1
        try:
            try:
                with gevent.Timeout(self.settings.ws_hello_timeout_s, HelloTimeout):
                    while self.after is None and self.read():
                        pass
            except HelloTimeout:
                self.fail(1008, f'send the handshake and {{"after": N}} within {self.settings.ws_hello_timeout_s:g} s')
            if self.after is not None and self.protocol.state is State.OPEN:
                self.catch_up_and_subscribe()
            while self.read():
                gevent.sleep(0)   # a client that keeps the socket full must not starve the others
        except OSError:
            pass   # the client went away (or we cut it off after a close): nothing left to do
        finally:
            if self.conversation is not None:
                self.hub.unsubscribe(self.conversation, self)
            stats["ws_open"] -= 1
            self.send_buffer.join(CLOSE_TIMEOUT_S)
            if self.abusive:
                self.discard_input(ABUSIVE_LINGER_S)
            if self.closer is not None:
                self.closer.kill(block=False)
            # the StreamServer closes the socket when this returns

    def read(self) -> bool:
        """Read once and act on what arrived; False once there is nothing more to read."""
        data = self.sock.recv(READ_BYTES)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if self.protocol.state is State.CLOSED:
                break
            if isinstance(event, Request):
                self.on_request(event)
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self.on_frame(event)
            elif event.opcode is Opcode.PING:
                self.on_ping()
        self.flush()
        if self.send_buffer.pending > self.settings.ws_max_pending_bytes and self.protocol.state is State.OPEN:
            self.hub.stats["ws_closed_unread"] += 1   # e.g. pongs piling up for a client that never reads
            self.abusive = True
            self.fail(1013, "too slow: more unsent bytes than allowed; read what you are sent")
        return bool(data) and self.protocol.state is not State.CLOSED and not self.abusive

    def discard_input(self, seconds: float) -> None:
        """After closing a flooding client: read and drop what it still sends, for ``seconds`` at
        most, without parsing it. Closing with unread input makes the kernel send a reset, which
        would throw away our close frame before the client read it."""
        deadline = time.monotonic() + seconds
        with gevent.Timeout(seconds, False):    # a client that sends nothing more
            while time.monotonic() < deadline and self.sock.recv(65536):
                gevent.sleep(0)

    def on_ping(self) -> None:
        now = time.monotonic()
        if now - self.pings_since >= 1.0:
            self.pings, self.pings_since = 0, now
        self.pings += 1
        if self.pings > MAX_PINGS_PER_S and self.protocol.state is State.OPEN:
            self.hub.stats["ws_closed_ping_flood"] += 1
            self.abusive = True
            self.fail(1008, f"more than {MAX_PINGS_PER_S} pings a second")

    def on_request(self, request: Request) -> None:
        match = PATH.fullmatch(request.path.split("?", 1)[0])
        if match is None:
            response = self.protocol.reject(404, "Use ws://host:port/ws/<conversation>\n")
        else:
            response = self.protocol.accept(request)
        self.protocol.send_response(response)
        if response.status_code != 101:
            return
        try:
            self.hub.channel(match.group(1))
        except UnknownConversation:
            self.fail(1008, f"no conversation {match.group(1)!r}: create it with POST /api/conversations")
            return
        self.conversation = match.group(1)

    def on_frame(self, frame: Frame) -> None:
        if self.protocol.state is not State.OPEN:
            return
        if frame.opcode is Opcode.BINARY:
            return self.fail(1003, "text frames of JSON only")
        self.fragments = [frame.data] if frame.opcode is Opcode.TEXT else self.fragments + [frame.data]
        if not frame.fin:
            return
        data, self.fragments = b"".join(self.fragments), None
        try:
            self.on_message(inputs.json_value(data))
        except inputs.BadInput as problem:
            self.fail(close_code(problem), str(problem)[:120])
        except Exception:   # a bug: say so with a close frame rather than dropping the socket
            LOG.exception("unexpected error on a WebSocket frame")
            self.fail(1011, "internal error; see the server's log")

    def on_message(self, message) -> None:
        if not isinstance(message, dict):
            raise inputs.BadInput("every frame is a JSON object")
        if self.after is None:
            if "after" not in message:
                raise inputs.BadInput('the first frame must be {"after": N}, the last seq you have (0 for none)')
            self.after = inputs.seq(message["after"])
            return
        if message.get("type") != "send":
            raise inputs.BadInput('after {"after": N}, send {"type": "send", "sender": ..., "body": ...}')
        new = inputs.new_message(message)
        stored = self.hub.send(self.conversation, new.sender, new.body, new.client_ts, new.client_id)
        self.hub.stats["sends.websocket"] += 1
        ack = {"type": "ack", "seq": stored.seq}
        if new.client_id is not None:
            ack["id"] = new.client_id
        if stored.repeated:
            ack["repeated"] = True
        self.send_buffer.push(text_frame(json.dumps(ack)))

    def catch_up_and_subscribe(self) -> None:
        """Replay what the client missed, a bounded amount at a time, then subscribe.

        The last read and the subscription happen under the hub's lock, which every publish takes:
        so no message falls between them. While replaying, the client's unsent bytes stay under
        half the cap: the loop waits for the writer to make room."""
        cursor, half = self.after, self.settings.ws_max_pending_bytes // 2
        while True:
            if self.send_buffer.pending > half and not self.wait_for_room(half):
                return
            with self.hub.lock:
                try:
                    batch = self.hub.after(self.conversation, cursor, REPLAY_BATCH)
                except AfterBeyondLast as problem:
                    return self.fail(1008, str(problem))
                if batch.gap:
                    self.send_buffer.push(text_frame(json.dumps({"type": "gap", "first_seq": batch.first_seq,
                                                     "last_seq": batch.last_seq})))
                    cursor = batch.first_seq - 1
                for message in batch.messages:
                    if self.send_buffer.pending > half:
                        break
                    if not self.send_buffer.push(message_frame(message)):
                        return   # the client is gone (reset): not another message for it
                    self.hub.stats["deliveries.websocket"] += 1
                    cursor = message.seq
                if cursor == batch.last_seq:
                    self.sent_seq = cursor
                    self.hub.subscribe(self.conversation, self)
                    self.send_buffer.push(text_frame(json.dumps({"type": "subscribed", "last_seq": cursor})))
                    self.flush()
                    return

    def wait_for_room(self, half: int) -> bool:
        if not self.send_buffer.wait_for_room(half, CLOSE_TIMEOUT_S * 6):
            self.fail(1013, "too slow to catch up: reconnect with your last seq")
            return False
        return self.protocol.state is State.OPEN

    # ---- writing: from the reader, from publishers (under the hub's lock), never blocking them

    def deliver(self, message: Message) -> None:
        """Called by the hub for every new message of the conversation."""
        if message.seq <= self.sent_seq or self.protocol.state is not State.OPEN:
            return
        if self.send_buffer.broken:   # reset: the reader is ending; stop handing it messages
            return self.hub.unsubscribe(self.conversation, self)
        if message.seq != self.sent_seq + 1:   # cannot happen with publishes in order; never skip silently
            return self.fail(1011, "missed a message: reconnect with your last seq")
        frame = message_frame(message)
        if self.send_buffer.pending + len(frame) > self.settings.ws_max_pending_bytes:
            self.hub.stats["ws_closed_slow"] += 1   # what is queued stays: the close frame goes after it
            return self.fail(1013, "too slow: more unsent messages than allowed; reconnect with your last seq")
        self.sent_seq = message.seq
        if self.send_buffer.push(frame):
            self.hub.stats["deliveries.websocket"] += 1

    def fail(self, code: int, reason: str) -> None:
        """Send a close frame with ``code`` and end the connection (cut off after CLOSE_TIMEOUT_S)."""
        if self.conversation is not None:
            self.hub.unsubscribe(self.conversation, self)
        if self.protocol.state is State.OPEN:
            self.hub.stats[f"ws_close.{code}"] += 1
            self.protocol.fail(code, reason)
        self.flush()
        if self.closer is None:
            self.closer = gevent.spawn_later(CLOSE_TIMEOUT_S, self.sock.close)

    def flush(self) -> None:
        """Queue whatever the protocol has to send (handshake, pongs, close frames, end of stream)."""
        ending = False
        for data in self.protocol.data_to_send():
            if data is SEND_EOF or data == SEND_EOF:
                ending = True
            else:
                self.send_buffer.push(data)
        if ending or self.send_buffer.eof_requested:
            self.send_buffer.end()


def close_code(problem: inputs.BadInput) -> int:
    """The close code for a frame that failed a check: 1009 too big, 1007 not JSON, 1008 the rest."""
    if problem.status == 413:
        return 1009
    return 1007 if isinstance(problem, inputs.NotJson) else 1008


def handler(hub: Hub, settings: Settings):
    """The StreamServer's handler: one call (in its own greenlet) per accepted connection."""
    def handle(sock: socket.socket, address) -> None:
        Connection(sock, hub, settings).serve()
    return handle
