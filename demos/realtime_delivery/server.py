"""Run all four transports in one process: ``python -m demos.realtime_delivery.server --port 8000 --ws-port 8001``.

gevent (monkey-patched first thing, before anything imports sockets or threads): Flask under
gevent's WSGI server for HTTP (short poll, long poll, SSE) on ``--port``, and a ``StreamServer``
speaking WebSocket on ``--ws-port``. No broker and no polling on the fan-out path: a stored message
wakes its waiters in the same process. Settings come from the environment (see ``settings``).
SIGTERM or Ctrl-C stops it; SIGKILL loses nothing that was acknowledged.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after the patching, on purpose)
import signal  # noqa: E402
import socket  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

from . import websocket  # noqa: E402
from .app import create_app  # noqa: E402
from .hub import Hub  # noqa: E402
from .settings import Settings  # noqa: E402
from .store import Store  # noqa: E402

BACKLOG = 2048   # many clients connect at once in the loads


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="HTTP: pages, polling, SSE")
    parser.add_argument("--ws-port", type=int, default=8001, help="WebSocket")
    args = parser.parse_args()
    settings = Settings.from_env()
    store = Store(settings.database_url, settings.window_length, settings.window_age_s)
    store.prune()
    hub = Hub(store)

    ws_server = StreamServer((args.host, args.ws_port), no_delay(websocket.handler(hub, settings)),
                             backlog=BACKLOG)
    ws_server.start()
    ws_port = ws_server.server_port
    http_server = WSGIServer((args.host, args.port), create_app(hub, settings, ws_port),
                             log=None, backlog=BACKLOG)
    http_server.handle = no_delay(http_server.handle)
    http_server.start()
    gevent.spawn(prune_forever, store, min(60.0, settings.window_age_s / 10))

    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    print(f"serving HTTP on http://{args.host}:{http_server.server_port} and WebSocket on "
          f"ws://{args.host}:{ws_port}/ws/<conversation>; database {settings.database_url}", flush=True)
    stop.wait()
    print("stopping", flush=True)
    http_server.stop(timeout=1)
    ws_server.stop(timeout=1)
    store.close()


if __name__ == "__main__":
    main()
