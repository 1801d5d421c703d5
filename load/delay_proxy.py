"""A TCP proxy that delays every byte by half a round trip: a wide-area link on loopback.

On loopback every real-time transport (short and long polling, SSE, WebSocket) answers within a
fraction of a millisecond, so they all look alike; their differences show over a real link. The
kernel's way to emulate one is netem, but this machine's kernel has none ("Specified qdisc kind is
unknown") and netem needs root. This proxy needs neither and runs wherever asyncio does:

    python -m load.delay_proxy --listen 127.0.0.1:9000 --target 127.0.0.1:8000 --rtt-ms 200
    delay proxy ready: 127.0.0.1:9000 -> 127.0.0.1:8000, rtt 200 ms

and clients connect to port 9000 instead of 8000. `--listen 127.0.0.1:0` (or `--listen 0`) takes a
free port, named in the ready line; `--up-ms 150 --down-ms 50` gives the two directions different
delays. `--stats-port P` answers `GET http://127.0.0.1:P/stats` with the connections and the bytes
that crossed the link each way (TCP payload: what a transport costs on the wire). SIGTERM or
Ctrl-C stop it. From Python:

    async with DelayProxy(("127.0.0.1", 8000), rtt_s=0.05) as proxy:
        ...connect to ("127.0.0.1", proxy.port)...

    with proxy_in_thread(("127.0.0.1", 8000), rtt_s=0.05) as proxy:   # for synchronous code
        ...

What the link does, per connection:

- Each direction is a FIFO of (deliver_at, chunk): a chunk read at time t is written on no
  earlier than t + the one-way delay (RTT/2 unless set per direction), in order.
- Opening a connection costs a round trip, as TCP's handshake would: the client's connect returns
  at once (the kernel accepts it), so the proxy counts what the client sends as sent one RTT later
  and connects to the target then. The first answer on a new connection comes after 2 RTT, every
  later one after 1 RTT, as over netem. `--no-handshake` (`handshake=False`) makes it 1 RTT.
- An end of stream (EOF, a half-close) reaches the other side after the delay, as a shutdown of
  the write side; the connection closes when both directions have ended. A reset or another
  error on one side resets the other after the delay; what was queued toward the broken side is
  dropped.
- At most 4 MiB (`--max-queued-mib`) waits per direction; past that the proxy stops reading from
  the sender until the queue drains. That is the link's window: 4 MiB per one-way delay, 40 MiB/s
  per connection at 200 ms RTT. There is no bandwidth limit, loss, jitter or slow start.

One event loop serves every connection with callbacks, one timer per busy direction, so one
process holds thousands of connections (two file descriptors each: the CLI raises its open-file
limit to the hard limit, so 10,000 connections need a hard limit above 20,000). On Linux that
loop is woken by a timerfd (see PreciseEpollSelector): plain epoll would fire every timer up to
a millisecond late. `DelayProxy` in a loop of yours gets that loop's timers; `new_event_loop()`
makes one like the CLI's.

Measured on the reference machine (2-core AMD EPYC VM; client, proxy and an echo server on it):
a round trip through the proxy at 50 or 200 ms RTT takes the RTT plus 0.75 to 1 ms in the median,
0.36 ms of which loopback and the echo server take without the proxy; p99 +2 to +6 ms; never less
than the RTT. CPU: 0.5 ms per round trip (a message each way) at 300 round trips a second, 13% of
a core, and 0.3 ms at 2,000 a second, 52%, so at high rates the proxy competes with the server for
the cores. 9,000 open connections hold 95 MiB.

A Linux reader with root and netem can delay the kernel's loopback instead:

    tc qdisc add dev lo root netem delay 25ms    # lo carries both directions: 25 ms each way, 50 ms RTT
    tc qdisc del dev lo root                     # remove it

That delays every loopback connection on the machine (brokers and load generator too), not only
the proxied ones.
"""
import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
import threading
from collections import deque
from typing import Iterator, Optional

from demos.limits import raise_open_files_limit

MAX_QUEUED_BYTES = 4 * 2**20
LISTEN_BACKLOG = 4096           # thousands of clients may connect at once
EOF, RESET = "eof", "reset"     # what a direction's FIFO holds besides bytes

Address = tuple[str, int]


class _Direction:
    """One direction of one connection: a FIFO of (deliver_at, chunk) drained in order by one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float, max_queued_bytes: int,
                 on_eof_delivered):
        self.loop, self.delay_s, self.max_queued_bytes = loop, delay_s, max_queued_bytes
        self.on_eof_delivered = on_eof_delivered
        self.fifo: deque = deque()
        self.queued_bytes = 0
        self.source: Optional[asyncio.Transport] = None   # read from
        self.sink: Optional[asyncio.Transport] = None     # written to; None until connected
        self.sink_full = False        # the sink's write buffer is full: its reader is slow
        self.reading_paused = False
        self.source_ended = False     # the source sent EOF: it must not be read again
        self.not_before = 0.0         # what is read earlier counts as sent then (the handshake)
        self.timer: Optional[asyncio.TimerHandle] = None
        self.eof_delivered = False
        self.dropped = False          # the sink is gone: nothing more goes this way

    def push(self, item) -> None:
        """Queue bytes, EOF or RESET to be delivered one delay from now."""
        if self.dropped:
            return
        if item is EOF:
            self.source_ended = True
        elif item is not RESET:
            self.queued_bytes += len(item)
        self.fifo.append((max(self.loop.time(), self.not_before) + self.delay_s, item))
        self.schedule()
        self.apply_backpressure()

    def writable(self) -> bool:
        return (self.sink is not None and not self.sink_full and not self.dropped
                and not self.sink.is_closing())

    def schedule(self) -> None:
        if self.timer is None and self.fifo and self.writable():
            self.timer = self.loop.call_at(self.fifo[0][0], self.deliver)

    def deliver(self) -> None:
        """Write everything that is due, in order; wait for the rest."""
        self.timer = None
        now = self.loop.time()
        while self.fifo and self.fifo[0][0] <= now and self.writable():
            _, item = self.fifo.popleft()
            if item is EOF:
                self.eof_delivered = True
                if self.sink.can_write_eof():
                    self.sink.write_eof()
                self.on_eof_delivered()
            elif item is RESET:
                reset(self.sink)
            else:
                self.queued_bytes -= len(item)
                self.sink.write(item)   # may call pause_writing at once, which sets sink_full
        self.schedule()
        self.apply_backpressure()

    def apply_backpressure(self) -> None:
        """Stop reading the source while too much waits here or in the sink's buffer."""
        if self.source is None or self.source_ended:
            return
        full = self.queued_bytes >= self.max_queued_bytes or self.sink_full
        if full and not self.reading_paused:
            self.source.pause_reading()
        elif not full and self.reading_paused:
            self.source.resume_reading()
        self.reading_paused = full

    def set_sink_full(self, full: bool) -> None:
        self.sink_full = full
        self.schedule()
        self.apply_backpressure()

    def drop(self) -> None:
        self.dropped = True
        self.fifo.clear()
        self.queued_bytes = 0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP reset (RST), not an orderly FIN, as a broken connection would."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _End(asyncio.Protocol):
    """The proxy's side of one socket, the client's or the target's: what it reads goes
    ``outgoing``, what comes ``incoming`` is written to it."""

    def __init__(self, link: "_Link", outgoing: _Direction, incoming: _Direction):
        self.link, self.outgoing, self.incoming = link, outgoing, incoming
        self.transport: Optional[asyncio.Transport] = None
        self.gone = False

    def connection_made(self, transport):
        self.transport = self.outgoing.source = self.incoming.sink = transport
        self.link.connected(self)

    def data_received(self, data):
        self.link.proxy.count(self.outgoing is self.link.up, len(data))
        self.outgoing.push(data)

    def eof_received(self):
        self.outgoing.push(EOF)
        return True                   # keep the socket open for writing: a half-close

    def pause_writing(self):
        self.incoming.set_sink_full(True)

    def resume_writing(self):
        self.incoming.set_sink_full(False)

    def connection_lost(self, exc):
        self.link.lost(self)


class _Link:
    """One proxied connection: the client's end, the target's end and the two directions."""

    def __init__(self, proxy: "DelayProxy"):
        self.proxy, self.loop = proxy, proxy.loop
        self.up = _Direction(self.loop, proxy.up_s, proxy.max_queued_bytes, self.eof_delivered)
        self.down = _Direction(self.loop, proxy.down_s, proxy.max_queued_bytes, self.eof_delivered)
        self.client = _End(self, outgoing=self.up, incoming=self.down)
        self.target = _End(self, outgoing=self.down, incoming=self.up)
        self.connecting: Optional[asyncio.Handle | asyncio.Task] = None

    def connected(self, end: _End) -> None:
        if end is self.target:
            self.up.schedule()        # what the client sent meanwhile
            return
        self.proxy.accepted += 1
        if self.proxy.handshake:
            handshake_done = self.loop.time() + self.proxy.rtt_s
            self.up.not_before = handshake_done
            self.connecting = self.loop.call_at(handshake_done + self.proxy.up_s, self.connect)
        else:
            self.connect()

    def connect(self) -> None:
        self.connecting = self.loop.create_task(self._open_target())

    async def _open_target(self) -> None:
        try:
            await self.loop.create_connection(lambda: self.target, *self.proxy.target)
        except OSError:
            self.lost(self.target)    # refused: the client's connection is reset, one delay later

    def eof_delivered(self) -> None:
        if self.up.eof_delivered and self.down.eof_delivered:
            self.up.drop()
            self.down.drop()
            self.client.transport.close()   # after their write buffers are flushed
            self.target.transport.close()

    def lost(self, end: _End) -> None:
        """``end``'s socket is closed: by us, or broken (a reset, a refused connect)."""
        end.gone = True
        end.incoming.drop()
        other = self.target if end is self.client else self.client
        if other.transport is None:   # the client left before the target was connected
            other.gone = True
            other.incoming.drop()
            self.connecting.cancel()
        elif not other.gone:
            end.outgoing.push(RESET)  # ignored when we closed both
        if self.client.gone and self.target.gone:
            self.proxy.links.discard(self)

    def abort(self) -> None:
        self.up.drop()
        self.down.drop()
        if self.connecting is not None:
            self.connecting.cancel()
        for end in (self.client, self.target):
            if end.transport is not None:
                end.transport.abort()


class DelayProxy:
    """Listens on ``listen`` (port 0: a free one, then see ``port``) and forwards each connection
    to ``target``, delaying client-to-target bytes by ``up_s`` and target-to-client bytes by
    ``down_s`` (each ``rtt_s / 2`` unless given)."""

    def __init__(self, target: Address, rtt_s: float = 0.0, *, up_s: Optional[float] = None,
                 down_s: Optional[float] = None, listen: Address = ("127.0.0.1", 0),
                 handshake: bool = True, max_queued_bytes: int = MAX_QUEUED_BYTES):
        self.target, self.listen = (target[0], int(target[1])), (listen[0], int(listen[1]))
        self.up_s = rtt_s / 2 if up_s is None else up_s
        self.down_s = rtt_s / 2 if down_s is None else down_s
        if self.up_s < 0 or self.down_s < 0:
            raise ValueError("delays cannot be negative")
        self.handshake, self.max_queued_bytes = handshake, max_queued_bytes
        self.links: set[_Link] = set()    # the connections open now
        self.accepted = 0                 # connections accepted so far
        self.bytes_up = 0                 # TCP payload that crossed the link, client to target
        self.bytes_down = 0               # and target to client (headers of TCP/IP not counted)
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.server: Optional[asyncio.Server] = None

    @property
    def rtt_s(self) -> float:
        return self.up_s + self.down_s

    @property
    def address(self) -> Address:
        return self.server.sockets[0].getsockname()[:2]

    @property
    def port(self) -> int:
        return self.address[1]

    def count(self, up: bool, size: int) -> None:
        if up:
            self.bytes_up += size
        else:
            self.bytes_down += size

    def stats(self) -> dict:
        """What crossed the link so far: ``GET /stats`` on ``--stats-port`` answers this."""
        return {"connections_accepted": self.accepted, "connections_open": len(self.links),
                "bytes_up": self.bytes_up, "bytes_down": self.bytes_down}

    def describe(self) -> str:
        """``127.0.0.1:9000 -> 127.0.0.1:8000, rtt 200 ms``, as the ready line says it."""
        text = f"{_format(self.address)} -> {_format(self.target)}, rtt {self.rtt_s * 1000:g} ms"
        if self.up_s != self.down_s:
            text += f" ({self.up_s * 1000:g} ms up, {self.down_s * 1000:g} ms down)"
        return text + ("" if self.handshake else ", no handshake delay")

    async def start(self) -> "DelayProxy":
        self.loop = asyncio.get_running_loop()
        self.server = await self.loop.create_server(self._accept, *self.listen, backlog=LISTEN_BACKLOG)
        return self

    def _accept(self) -> _End:
        link = _Link(self)
        self.links.add(link)
        return link.client

    async def close(self) -> None:
        """Stop listening and cut every connection through the proxy."""
        if self.server is None:
            return
        self.server.close()
        for link in list(self.links):
            link.abort()
        await self.server.wait_closed()
        for _ in range(100):          # let connection_lost run for the aborted sockets
            if not self.links:
                break
            await asyncio.sleep(0.001)

    async def __aenter__(self) -> "DelayProxy":
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


@contextlib.contextmanager
def proxy_in_thread(target: Address, rtt_s: float = 0.0, **options) -> Iterator[DelayProxy]:
    """A ``DelayProxy`` on an event loop of its own in a daemon thread, for synchronous code."""
    loop = new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="delay-proxy", daemon=True)
    thread.start()
    proxy = DelayProxy(target, rtt_s, **options)
    try:
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(timeout=10)
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# --- timers that fire on time ----------------------------------------------------------------

class PreciseEpollSelector(selectors.EpollSelector):
    """epoll, woken by a timerfd when asyncio's next timer is due.

    epoll_wait counts whole milliseconds, rounded up, so on Linux an asyncio timer fires up to a
    millisecond late (median 0.8 ms on the reference machine); a timerfd wakes the wait to within
    about 0.2 ms. (macOS's kqueue takes nanoseconds and needs none of this.)"""

    def __init__(self, timerfd: int):
        super().__init__()
        self.timerfd = timerfd
        self._selector.register(timerfd, select.EPOLLIN)   # on the epoll object: asyncio never sees it

    def select(self, timeout=None):
        if timeout is None or timeout <= 0:
            return super().select(timeout)
        _arm(self.timerfd, timeout)
        try:
            return super().select(timeout)
        finally:
            _arm(self.timerfd, 0)   # disarm: an expired timerfd would keep every wait from sleeping

    def close(self):
        super().close()
        os.close(self.timerfd)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = None


def _timerfd_create() -> Optional[int]:
    """A timerfd through ctypes (``os.timerfd_create`` is Python 3.13+), or None where there is none."""
    global _libc
    try:
        _libc = _libc or ctypes.CDLL(None, use_errno=True)
        fd = _libc.timerfd_create(1, os.O_NONBLOCK | os.O_CLOEXEC)   # 1: CLOCK_MONOTONIC
    except (OSError, AttributeError):
        return None
    return fd if fd >= 0 else None


def _arm(timerfd: int, after_s: float) -> None:
    """Expire ``after_s`` from now (0: disarm)."""
    nanoseconds = max(1, round(after_s * 1e9)) if after_s > 0 else 0
    value = _Timespec(nanoseconds // 10**9, nanoseconds % 10**9)
    _libc.timerfd_settime(timerfd, 0, ctypes.byref(_Itimerspec(_Timespec(0, 0), value)), None)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An asyncio event loop whose timers fire on time on Linux too (see PreciseEpollSelector);
    elsewhere the default loop. Use it for the proxy's loop: ``asyncio.Runner(loop_factory=...)``."""
    timerfd = _timerfd_create() if hasattr(selectors, "EpollSelector") else None
    if timerfd is None:
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(PreciseEpollSelector(timerfd))


# --- command line ---------------------------------------------------------------------------

def parse_address(text: str, default_host: str = "127.0.0.1") -> Address:
    """``HOST:PORT`` or just ``PORT`` (on ``default_host``)."""
    host, _, port = text.rpartition(":")
    try:
        return (host.strip("[]") or default_host, int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not HOST:PORT or PORT: {text!r}") from None


def _format(address: Address) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_stats(proxy: DelayProxy, port: int) -> asyncio.Server:
    """A minimal HTTP endpoint: any request gets ``proxy.stats()`` as JSON (for the harness's sampler)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await reader.readuntil(b"\r\n\r\n")
            body = json.dumps(proxy.stats()).encode()
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()
    return await asyncio.start_server(answer, "127.0.0.1", port)


async def serve(proxy: DelayProxy, stats_port: Optional[int] = None) -> None:
    """Run ``proxy`` until SIGTERM or SIGINT, printing the ready line once it listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):   # even if started with SIGINT ignored (`&`)
        loop.add_signal_handler(sig, stop.set)
    async with proxy:
        stats = None if stats_port is None else await serve_stats(proxy, stats_port)
        if stats is not None:
            print(f"delay proxy stats: http://127.0.0.1:{stats.sockets[0].getsockname()[1]}/stats", flush=True)
        print(f"delay proxy ready: {proxy.describe()}", flush=True)
        await stop.wait()
        print(f"delay proxy stopping (connections: {proxy.accepted} accepted, {len(proxy.links)} still open; "
              f"bytes: {proxy.bytes_up} up, {proxy.bytes_down} down)", flush=True)
        if stats is not None:
            stats.close()
    print("delay proxy stopped", flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.delay_proxy", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=parse_address, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="where clients connect (default 127.0.0.1:0, a free port)")
    parser.add_argument("--target", type=parse_address, required=True, metavar="HOST:PORT",
                        help="where connections are forwarded to")
    parser.add_argument("--rtt-ms", type=float, help="round-trip time added: half of it each way")
    parser.add_argument("--up-ms", type=float, help="client-to-target delay (default: half the RTT)")
    parser.add_argument("--down-ms", type=float, help="target-to-client delay (default: half the RTT)")
    parser.add_argument("--no-handshake", action="store_true",
                        help="don't charge a new connection the round trip of TCP's handshake")
    parser.add_argument("--stats-port", type=int, metavar="PORT",
                        help="answer GET /stats on 127.0.0.1:PORT with connections and bytes each way (0: a free port)")
    parser.add_argument("--max-queued-mib", type=float, default=MAX_QUEUED_BYTES / 2**20,
                        help="per direction and connection; past it the sender is not read (default 4)")
    args = parser.parse_args(argv)
    if args.rtt_ms is None and (args.up_ms is None or args.down_ms is None):
        parser.error("give --rtt-ms, or both --up-ms and --down-ms")
    rtt_s = (args.rtt_ms or 0.0) / 1000
    ms_to_s = lambda ms: None if ms is None else ms / 1000
    try:
        proxy = DelayProxy(args.target, rtt_s, up_s=ms_to_s(args.up_ms), down_s=ms_to_s(args.down_ms),
                           listen=args.listen, handshake=not args.no_handshake,
                           max_queued_bytes=int(args.max_queued_mib * 2**20))
    except ValueError as error:
        parser.error(str(error))
    raise_open_files_limit()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(proxy, args.stats_port))
    except OSError as error:          # e.g. the listening port is taken
        print(f"error: cannot listen on {_format(args.listen)}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
