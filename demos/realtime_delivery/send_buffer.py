"""A WebSocket connection's send queue: the publisher never waits for a slow client.

Fan-out runs under the hub's lock, so writing to a subscriber must never block. ``push`` writes
at once when the socket takes the bytes without waiting (nearly always); what it does not take
goes into the queue, and a writer greenlet, which exists only while the queue is not empty, writes
it out. ``pending`` counts the bytes queued or being written: the connection compares it with its
cap (``WS_MAX_PENDING_BYTES``) and closes a client that falls too far behind, and a replay waits
(``wait_for_room``) until the writer has brought it under half the cap.

The moment a write fails (the client reset the connection, or went away), the buffer is
``broken``: what is queued is dropped, the socket closed, and every later ``push`` is refused at
once, so a replay or a fan-out stops writing to a client that is gone.
"""
import socket
from collections import deque
from typing import Optional

import gevent
from gevent.event import Event


class SendBuffer:
    __slots__ = ("sock", "stats", "max_pending", "queue", "pending", "writer", "room", "eof_requested", "broken")

    def __init__(self, sock: socket.socket, stats: dict, max_pending: int):
        self.sock, self.stats, self.max_pending = sock, stats, max_pending
        self.queue: deque = deque()    # whole frames (or handshake bytes) not yet written
        self.pending = 0               # bytes in the queue plus those being written
        self.writer: Optional[gevent.Greenlet] = None
        self.room: Optional[Event] = None   # set by the writer when pending drops to half the cap
        self.eof_requested = False
        self.broken = False            # a write failed: the client is gone, nothing more is written

    def push(self, data: bytes) -> bool:
        """Write ``data`` now if the socket takes it without waiting, else queue it for the writer.
        False (and nothing written or queued) once the connection is broken."""
        if self.writer is None and not self.queue and not self.broken:
            try:
                sent = self.sock.send(data, 0, timeout=0.0)   # gevent: never wait
            except BlockingIOError:                             # the socket's buffer is full: queue it all
                pass
            except OSError:                                     # reset, or closed: stop writing to it
                self.break_off()
            else:
                if sent == len(data):
                    return True
                data = data[sent:]                              # the rest of the frame goes first
        if self.broken:                                         # the client is gone: nothing more for it
            return False
        self.queue.append(data)
        self.pending += len(data)
        stats = self.stats
        stats["ws_pending_bytes"] += len(data)
        if stats["ws_pending_bytes"] > stats["ws_pending_bytes_peak"]:
            stats["ws_pending_bytes_peak"] = stats["ws_pending_bytes"]
        if self.writer is None:
            self.writer = gevent.spawn(self.drain)
        return True

    def break_off(self) -> None:
        """The client is gone: drop what is queued, close the socket (the reader's recv ends too)."""
        self.broken = True
        self.unqueue(self.pending)
        self.queue.clear()
        self.sock.close()
        if self.room is not None:
            self.room.set()

    def end(self) -> None:
        """Shut the socket's write side once everything queued has been written."""
        self.eof_requested = True
        if self.writer is None:
            self.writer = gevent.spawn(self.drain)

    def wait_for_room(self, size: int, timeout_s: float) -> bool:
        """Wait until at most ``size`` bytes are pending (or the writer has ended); False on timeout."""
        self.room = self.room or Event()
        self.room.clear()
        return self.pending <= size or self.room.wait(timeout_s)

    def join(self, timeout_s: float) -> None:
        """Give the writer ``timeout_s`` to finish."""
        if self.writer is not None:
            self.writer.join(timeout_s)

    def unqueue(self, size: int) -> None:
        self.pending -= size
        self.stats["ws_pending_bytes"] -= size

    def drain(self) -> None:
        try:
            while self.queue:
                chunk = self.queue.popleft() if len(self.queue) == 1 else b"".join(self.queue)
                self.queue.clear()
                try:
                    self.sock.sendall(chunk)
                finally:
                    self.unqueue(len(chunk))
                if self.room is not None and self.pending <= self.max_pending // 2:
                    self.room.set()
            if self.eof_requested and not self.broken:
                self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.break_off()
        finally:
            self.writer = None
            if self.room is not None:
                self.room.set()
