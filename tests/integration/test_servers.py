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
from load.harness import wait_for
from load.processes import alive


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

    left = [process for process in processes if alive(process)]
    assert not left, f"left running: {left}"
    taken = [address.port for address in listening if not servers.port_is_free(address.port)]
    assert not taken, f"ports still taken: {taken}"
    assert not folder.exists()


@pytest.mark.servers
def test_workdir_keeps_the_files(start_server, tmp_path):
    with start_server("redis", str(tmp_path)) as server:
        assert server.folder.parent == tmp_path
        process = psutil.Process(server.pid)
    assert (server.folder / "redis.log").read_text()
    assert not alive(process)


@pytest.mark.servers
@pytest.mark.parametrize("name, export_prefix", [("redis", "export REDIS_URL=redis://127.0.0.1:"),
                                                 ("postgres", "export DATABASE_URL=postgresql://postgres@127.0.0.1:")])
def test_command_line_prints_the_url_and_stops_cleanly_on_sigterm(request, name, export_prefix):
    request.getfixturevalue(f"{name}_url")                     # skipped when the server is not installed
    cli = subprocess.Popen([sys.executable, "-m", "load.servers", name], stdout=subprocess.PIPE,
                           text=True, cwd=os.path.dirname(os.path.dirname(servers.__file__)))
    try:
        about, export = cli.stdout.readline(), cli.stdout.readline()
        assert export.startswith(export_prefix), export
        url = export.split("=", 1)[1].strip()
        if name == "redis":                                    # Redis as the broker: the same URL, commented
            assert cli.stdout.readline() == f"# or, redis as the message broker: export BROKER_URL={url}\n"
        server = psutil.Process(int(re.search(r"pid (\d+)", about).group(1)))
        assert round_trip(url)["hello"].startswith("servers-test-")
        cli.send_signal(signal.SIGTERM)
        rest, _ = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert cli.returncode == 0 and f"stopped {name}" in rest
    assert not alive(server)
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


def test_missing_says_how_to_install_or_nothing(monkeypatch):
    for name in servers.SERVERS:
        hint = servers.missing(name)
        assert hint is None or "install it with `" in hint
    monkeypatch.setattr(servers.shutil, "which", lambda *args, **kwargs: None)
    assert servers.missing("rabbitmq") == ("rabbitmq-server not found: install it with "
                                           "`apt-get install rabbitmq-server` (Debian/Ubuntu) or `brew install rabbitmq`")


# --- kill and restart: the same port, the same data ------------------------------------------

def write_and_read_back(name: str, url: str):
    """Something the server must keep (a Redis key, a persistent message on a durable queue, a
    committed row), then a function that reads it back: what it finds, or None."""
    if name == "redis":
        import redis
        redis.Redis.from_url(url).set("kept", "across the kill")
        return lambda: (redis.Redis.from_url(url).get("kept") or b"").decode() or None
    if name == "rabbitmq":
        # publisher confirms: the broker answers once the persistent message is on disk
        with kombu.Connection(url, transport_options={"confirm_publish": True}) as connection:
            connection.SimpleQueue("kept", queue_opts={"durable": True}).put(
                "across the kill", delivery_mode="persistent", serializer="json")

        def read():
            with kombu.Connection(url, connect_timeout=5) as connection:
                queue = connection.SimpleQueue("kept", queue_opts={"durable": True})
                try:
                    message = queue.get(block=True, timeout=5)
                except queue.Empty:
                    return None
                message.ack()
                return message.payload
        return read
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE kept (what TEXT)")
        db.execute("INSERT INTO kept VALUES ('across the kill')")
    return lambda: psycopg.connect(url, autocommit=True).execute("SELECT what FROM kept").fetchone()[0]


@pytest.mark.servers
@pytest.mark.parametrize("name, options", [("redis", {"appendonly": True}), ("rabbitmq", {}), ("postgres", {})])
def test_a_killed_server_restarts_on_the_same_port_with_its_data(start_server, name, options):
    with start_server(name, **options) as server:
        read_back = write_and_read_back(name, server.url)
        helpers = [process.pid for process, _ in server.helpers]   # RabbitMQ's epmd outlives the node
        before = [process for process in processes_of(server) if process.pid not in helpers]
        server.kill()
        assert not [process for process in before if alive(process)], "SIGKILL left some running"
        assert servers.port_is_free(server.port)
        server.start()
        assert server.pid not in [process.pid for process in before]
        assert server.port in [address.port for address in listening_addresses(processes_of(server))]
        assert read_back() == "across the kill"
        server.restart()                                   # a clean stop and a start: the same again
        assert round_trip(server.url)["committed"]


@pytest.mark.servers
def test_redis_without_appendonly_loses_its_data_on_a_kill(start_server):
    with start_server("redis") as server:
        read_back = write_and_read_back("redis", server.url)
        server.kill()
        server.start()
        assert read_back() is None


@pytest.mark.servers
@pytest.mark.timeout(90)
def test_the_command_line_crashes_and_restarts_its_servers_on_sigusr1_and_sigusr2(request, tmp_path):
    """By hand: SIGUSR1 SIGKILLs the servers, SIGUSR2 starts them on the same port and data;
    load.faults kill-restart refuses redis-server (its command line is rewritten) without killing it."""
    import redis
    request.getfixturevalue("redis_url")                        # skipped when Redis is not installed
    cli = subprocess.Popen([sys.executable, "-m", "load.servers", "redis", "--appendonly", "--workdir", str(tmp_path)],
                           stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(servers.__file__)))
    try:
        about, export = cli.stdout.readline(), cli.stdout.readline()
        url = export.split("=", 1)[1].strip()
        port = urllib.parse.urlsplit(url).port
        redis.Redis.from_url(url).set("kept", "yes")
        refused = subprocess.run([sys.executable, "-m", "load.faults", "kill-restart", "--port", str(port), "--down", "0"],
                                 capture_output=True, text=True, timeout=30, cwd=os.path.dirname(os.path.dirname(servers.__file__)))
        assert refused.returncode != 0 and "SIGUSR1" in refused.stderr
        first = psutil.Process(int(re.search(r"pid (\d+)", about).group(1)))
        assert alive(first)
        cli.send_signal(signal.SIGUSR1)
        wait_for(lambda: not alive(first), 10, "Redis SIGKILLed")
        cli.send_signal(signal.SIGUSR2)
        wait_for(lambda: _answers(url), 30, "Redis back on its port")
        assert redis.Redis.from_url(url).get("kept") == b"yes"
        cli.send_signal(signal.SIGTERM)
        cli.communicate(timeout=30)
    finally:
        cli.kill()


def _answers(url: str) -> bool:
    import redis
    try:
        return redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def test_redis_with_appendonly_fsyncs_before_it_answers(start_server):
    # everysec, Redis's default, holds writes back while a slow fsync runs and answers anyway: a
    # SIGKILL then loses acknowledged writes (a CI run lost queued jobs so)
    import redis
    with start_server("redis", appendonly=True) as server:
        config = redis.Redis.from_url(server.url).config_get("append*")
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "always")
