"""Run all four transports: ``python -m demos.realtime_delivery.server --port 8000 --ws-port 8001``.

gevent (monkey-patched first thing, before anything imports sockets or threads): Flask under
gevent's WSGI server for HTTP (short poll, long poll, SSE) on ``--port``, and a ``StreamServer``
speaking WebSocket on ``--ws-port``. Settings come from the environment (see ``settings``).

One process or several:

- By default one process, and no broker and no polling on the fan-out path: a stored message wakes
  its waiters in the same process, in the same call (``hub``). Nothing to install, nothing added
  to the latency; but one process under gevent uses one core, whatever the machine has.
- ``--processes N`` with ``BROKER_URL`` (Redis or RabbitMQ): this process binds both listening
  sockets, then forks N workers that accept on both (the kernel hands each new connection to one
  of them; ``supervisor``). Each worker opens its own store connection and hub after the fork and learns of the
  others' messages through the broker (``fanout``: one hop, about 1 ms added on loopback; the
  store, not the broker, stays the truth). The parent restarts a worker that dies. Separate
  servers on other ports or machines, sharing the database and ``BROKER_URL``, work the same way.
- ``--processes N`` without ``BROKER_URL`` is refused: each worker's hub would wake only its own
  clients, and a message sent to one worker would reach the others' clients only when they poll.

SIGTERM or Ctrl-C stops it (the parent stops its workers); SIGKILL loses nothing acknowledged.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after the patching, on purpose)
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from typing import Optional  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from gevent.server import StreamServer  # noqa: E402
from kombu.utils.url import maybe_sanitize_url  # noqa: E402

from demos.limits import raise_open_files_limit  # noqa: E402

from . import websocket  # noqa: E402
from .app import create_app  # noqa: E402
from .fanout import BrokerUnavailable, Fanout, check_reachable  # noqa: E402
from .hub import Hub  # noqa: E402
from .settings import Settings  # noqa: E402
from .store import Store  # noqa: E402
from .supervisor import stop_when_orphaned, supervise  # noqa: E402

BACKLOG = 2048            # many clients connect at once in the loads
NEEDS_BROKER = ("--processes {n} needs BROKER_URL: without a broker each worker's hub wakes only its "
                "own clients, so a message sent to one worker would not reach the others' clients. "
                "Start Redis with `make servers` (it prints the BROKER_URL to use) and set BROKER_URL, "
                "or run one process")


def no_delay(handle):
    """Send small writes at once (TCP_NODELAY). Without it Nagle's algorithm holds a response's
    second segment until the client ACKs the first, and the client delays its ACK by up to 40 ms:
    every held long poll answered 40-50 ms late on a keep-alive connection (measured here)."""
    def handle_without_delay(sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return handle(sock, address)
    return handle_without_delay


def prune_forever(store: Store, interval_s: float) -> None:
    """Age out messages older than the window, also in conversations nobody writes to."""
    while True:
        gevent.sleep(interval_s)
        store.prune()


def listen(host: str, port: int) -> socket.socket:
    return socket.create_server((host, port), backlog=BACKLOG)


def describe(settings: Settings) -> str:
    broker = f"; broker {maybe_sanitize_url(settings.broker_url)}" if settings.broker_url else ""
    return f"database {settings.database_url}{broker}"


def serve(http_listener: socket.socket, ws_listener: socket.socket, settings: Settings,
          worker: str = "", parent_pid: Optional[int] = None) -> int:
    """Serve both sockets from this process until SIGTERM or SIGINT; the exit code."""
    store = Store(settings.database_url, settings.window_length, settings.window_age_s)
    if not worker:
        store.prune()   # with workers, the parent has done it
    hub = Hub(store)
    fanout = None
    if settings.broker_url:
        try:
            fanout = Fanout(hub, settings.broker_url).start()
        except BrokerUnavailable as problem:
            print(f"error: {problem}", file=sys.stderr, flush=True)
            return 1

    ws_server = StreamServer(ws_listener, no_delay(websocket.handler(hub, settings)))
    ws_server.start()
    ws_port = ws_server.server_port
    http_server = WSGIServer(http_listener, create_app(hub, settings, ws_port), log=None)
    http_server.handle = no_delay(http_server.handle)
    http_server.start()
    gevent.spawn(prune_forever, store, min(60.0, settings.window_age_s / 10))

    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    if parent_pid is not None:
        gevent.spawn(stop_when_orphaned, parent_pid, stop)
    host = http_server.server_host
    if worker:
        print(f"{worker} (pid {os.getpid()}) serving", flush=True)
    else:
        print(f"serving HTTP on http://{host}:{http_server.server_port} and WebSocket on "
              f"ws://{host}:{ws_port}/ws/<conversation>; {describe(settings)}", flush=True)
    stop.wait()
    print(f"{worker or 'server'} stopping", flush=True)
    http_server.stop(timeout=1)
    ws_server.stop(timeout=1)
    if fanout is not None:
        fanout.stop()
    store.close()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="HTTP: pages, polling, SSE")
    parser.add_argument("--ws-port", type=int, default=8001, help="WebSocket")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="worker processes sharing both ports (N > 1 needs BROKER_URL)")
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    settings = Settings.from_env()
    if args.processes > 1 and not settings.broker_url:
        sys.exit("error: " + NEEDS_BROKER.format(n=args.processes))
    if settings.broker_url:
        try:
            check_reachable(settings.broker_url)
        except BrokerUnavailable as problem:
            sys.exit(f"error: {problem}")

    open_files = raise_open_files_limit()
    if open_files < 4096:
        print(f"note: at most {open_files} open files per process, so fewer clients: raise the hard limit "
              f"(`ulimit -Hn`, /etc/security/limits.conf) to hold thousands", flush=True)
    http_listener, ws_listener = listen(args.host, args.port), listen(args.host, args.ws_port)
    if args.processes == 1:
        sys.exit(serve(http_listener, ws_listener, settings))
    store = Store(settings.database_url, settings.window_length, settings.window_age_s)
    store.prune()   # once, and a bad DATABASE_URL fails here rather than in every worker
    store.close()   # no connection crosses the fork

    def work(worker: str, parent_pid: int) -> int:
        return serve(http_listener, ws_listener, settings, worker, parent_pid)

    def announce(pids: list[int]) -> None:
        host, port = http_listener.getsockname()[:2]
        print(f"serving HTTP on http://{host}:{port} and WebSocket on ws://{host}:{ws_listener.getsockname()[1]}"
              f"/ws/<conversation> from {len(pids)} worker processes (pids {', '.join(map(str, pids))}); "
              f"{describe(settings)}", flush=True)

    sys.exit(supervise(args.processes, work, announce))


if __name__ == "__main__":
    main()
