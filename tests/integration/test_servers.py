"""load.servers starts brokers that really work, only on loopback, and leaves nothing behind."""
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
import uuid

import kombu
import psutil
import pytest

from load import servers


def round_trip(url: str) -> dict:
    """Publish a persistent message to a durable queue, take it back and ack it."""
    name = f"servers-test-{uuid.uuid4().hex[:8]}"
    with kombu.Connection(url, connect_timeout=5) as connection:
        queue = connection.SimpleQueue(name, queue_opts={"durable": True, "auto_delete": True})
        queue.put({"hello": name}, delivery_mode="persistent", serializer="json")
        message = queue.get(block=True, timeout=10)
        message.ack()
        queue.close()
        return message.payload | {"delivery_mode": message.properties.get("delivery_mode")}


def processes_of(server) -> list[psutil.Process]:
    """Every process started for ``server`` and all their children."""
    found = {}
    for pid in server.pids:
        process = psutil.Process(pid)
        for each in [process, *process.children(recursive=True)]:
            found[each.pid] = each
    return list(found.values())


def is_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE   # a zombie is dead
    except psutil.NoSuchProcess:
        return False


@pytest.mark.servers
@pytest.mark.parametrize("name", servers.SERVERS)
def test_server_works_on_loopback_and_leaves_nothing_behind(start_server, name):
    with start_server(name) as server:
        assert server.name == name and str(server.port) in server.url
        assert round_trip(server.url)["delivery_mode"] == 2
        processes = processes_of(server)
        assert server.pid in [process.pid for process in processes]
        listening = [c.laddr for process in processes for c in process.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert server.port in [address.port for address in listening]
        assert {address.ip for address in listening} <= {"127.0.0.1", "::1"}, listening
        folder = server.folder

    alive = [process for process in processes if is_alive(process)]
    assert not alive, f"left running: {alive}"
    taken = [address.port for address in listening if not servers.port_is_free(address.port)]
    assert not taken, f"ports still taken: {taken}"
    assert not folder.exists()


@pytest.mark.servers
def test_workdir_keeps_the_files(start_server, tmp_path):
    with start_server("redis", str(tmp_path)) as server:
        assert server.folder.parent == tmp_path
        process = psutil.Process(server.pid)
    assert (server.folder / "redis.log").read_text()
    assert not is_alive(process)


@pytest.mark.servers
def test_command_line_prints_the_url_and_stops_cleanly_on_sigterm(redis_url):   # skipped without Redis
    cli = subprocess.Popen([sys.executable, "-m", "load.servers", "redis"], stdout=subprocess.PIPE,
                           text=True, cwd=os.path.dirname(os.path.dirname(servers.__file__)))
    try:
        about, export = cli.stdout.readline(), cli.stdout.readline()
        assert export.startswith("export BROKER_URL=redis://127.0.0.1:"), export
        url = export.split("=", 1)[1].strip()
        redis = psutil.Process(int(re.search(r"pid (\d+)", about).group(1)))
        assert round_trip(url)["hello"].startswith("servers-test-")
        cli.send_signal(signal.SIGTERM)
        rest, _ = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert cli.returncode == 0 and "stopped redis" in rest
    assert not is_alive(redis)
    assert servers.port_is_free(urllib.parse.urlsplit(url).port)


@pytest.mark.parametrize("name, program", [("redis", "redis-server"), ("rabbitmq", "rabbitmq-server")])
def test_a_missing_server_says_how_to_install_it(monkeypatch, tmp_path, name, program):
    monkeypatch.setattr(servers.shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setattr(servers.tempfile, "tempdir", str(tmp_path))
    hint = f"{program} not found: install it with `apt-get install {program}`"
    with pytest.raises(servers.ServerMissing, match=hint):
        with servers.running(name):
            pass
    assert not list(tmp_path.iterdir()), "the temp folder was not removed"
