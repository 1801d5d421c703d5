"""``python -m load.delay_proxy`` started as the harness starts services: ready line, delay, bytes counted, clean stop."""
import contextlib
import re
import signal
import socket
import sys
import threading
import time

import psutil

from load.harness import Service, get_json, log_ready


def echo_once(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    with connection, contextlib.suppress(ConnectionError):
        while data := connection.recv(65536):
            connection.sendall(data)


def test_the_cli_says_when_it_is_ready_delays_and_stops_on_sigterm(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=echo_once, args=(listener,), daemon=True).start()
        target_port = listener.getsockname()[1]
        log = tmp_path / "delay-proxy.log"
        proxy = Service("delay-proxy", [sys.executable, "-m", "load.delay_proxy", "--listen", "127.0.0.1:0",
                                        "--target", f"127.0.0.1:{target_port}", "--rtt-ms", "50",
                                        "--stats-port", "0"],
                        log_path=log, ready=log_ready(log, "delay proxy ready:"), timeout_s=15).start()
        try:
            ready = re.search(r"delay proxy ready: 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+), rtt 50 ms\n",
                              log.read_text())
            assert ready and int(ready[2]) == target_port, log.read_text()
            with socket.create_connection(("127.0.0.1", int(ready[1])), timeout=5) as client:
                times = []
                for message in (b"first", b"second", b"third"):
                    started = time.monotonic()
                    client.sendall(message)
                    assert client.recv(100) == message
                    times.append(time.monotonic() - started)
                stats_url = re.search(r"delay proxy stats: (http://\S+)\n", log.read_text())[1]
                assert get_json(stats_url) == {"connections_accepted": 1, "connections_open": 1,
                                               "bytes_up": 16, "bytes_down": 16}

                children = psutil.Process(proxy.process.pid).children(recursive=True)
                proxy.process.send_signal(signal.SIGTERM)         # with the connection still open
                assert proxy.process.wait(5) == 0
                try:
                    assert client.recv(100) == b""                 # the proxy closed it
                except ConnectionResetError:
                    pass
            assert 0.100 <= times[0] < 0.150          # the handshake's round trip, then the message's
            assert all(0.050 <= t < 0.075 for t in times[1:]), times
            assert not [child for child in children if child.is_running()]
            assert "delay proxy stopping (connections: 1 accepted, 1 still open; bytes: 16 up, 16 down)" in log.read_text()
            assert "delay proxy stopped" in log.read_text()
        finally:
            proxy.stop()
