"""load.servers starts servers that really work, only on loopback, and leaves nothing behind."""
import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import uuid

import kombu
import psutil
import psycopg
import pytest

from load import servers


def round_trip(url: str) -> dict:
    """Through the server and back: a persistent message on a broker, a committed row on PostgreSQL."""
    name = f"servers-test-{uuid.uuid4().hex[:8]}"
    if url.startswith("postgresql://"):
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as db:
            db.execute(f'CREATE TABLE "{name}" (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, hello TEXT)')
            db.execute(f'INSERT INTO "{name}" (hello) VALUES (%s)', (name,))
        with psycopg.connect(url, connect_timeout=5) as db:          # a second connection sees it
            (hello,), = db.execute(f'SELECT hello FROM "{name}"').fetchall()
            db.execute(f'DROP TABLE "{name}"')
        return {"hello": hello, "committed": True}
    with kombu.Connection(url, connect_timeout=5) as connection:
        queue = connection.SimpleQueue(name, queue_opts={"durable": True, "auto_delete": True})
        queue.put({"hello": name}, delivery_mode="persistent", serializer="json")
        message = queue.get(block=True, timeout=10)
        message.ack()
        queue.close()
        return message.payload | {"committed": message.properties.get("delivery_mode") == 2}


def processes_of(server) -> list[psutil.Process]:
    """Every process started for ``server`` and all their children."""
    found = {}
    for pid in server.pids:
        process = psutil.Process(pid)
        for each in [process, *process.children(recursive=True)]:
            found[each.pid] = each
    return list(found.values())


def listening_addresses(processes: list[psutil.Process]) -> list:
    found = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):        # a PostgreSQL backend whose client just left
            found += [c.laddr for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    return found


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
        assert round_trip(server.url)["committed"]         # persistent message, committed row
        processes = processes_of(server)
        assert server.pid in [process.pid for process in processes]
        listening = listening_addresses(processes)
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
@pytest.mark.parametrize("name, export_prefix", [("redis", "export BROKER_URL=redis://127.0.0.1:"),
                                                 ("postgres", "export DATABASE_URL=postgresql://postgres@127.0.0.1:")])
def test_command_line_prints_the_url_and_stops_cleanly_on_sigterm(request, name, export_prefix):
    request.getfixturevalue(f"{name}_url")                     # skipped when the server is not installed
    cli = subprocess.Popen([sys.executable, "-m", "load.servers", name], stdout=subprocess.PIPE,
                           text=True, cwd=os.path.dirname(os.path.dirname(servers.__file__)))
    try:
        about, export = cli.stdout.readline(), cli.stdout.readline()
        assert export.startswith(export_prefix), export
        url = export.split("=", 1)[1].strip()
        server = psutil.Process(int(re.search(r"pid (\d+)", about).group(1)))
        assert round_trip(url)["hello"].startswith("servers-test-")
        cli.send_signal(signal.SIGTERM)
        rest, _ = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert cli.returncode == 0 and f"stopped {name}" in rest
    assert not is_alive(server)
    assert servers.port_is_free(urllib.parse.urlsplit(url).port)


@pytest.mark.parametrize("name, program, package", [("redis", "redis-server", "redis-server"),
                                                   ("rabbitmq", "rabbitmq-server", "rabbitmq-server"),
                                                   ("postgres", "postgres", "postgresql")])
def test_a_missing_server_says_how_to_install_it(monkeypatch, tmp_path, name, program, package):
    monkeypatch.setattr(servers.shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setattr(servers.tempfile, "tempdir", str(tmp_path))
    hint = f"{program} not found: install it with `apt-get install {package}`"
    with pytest.raises(servers.ServerMissing, match=hint):
        with servers.running(name):
            pass
    assert not list(tmp_path.iterdir()), "the temp folder was not removed"
