"""Real Redis, RabbitMQ and PostgreSQL, started for the tests and for readers, and stopped completely.

Each server runs on a free loopback port with all its files in its own folder, so nothing
touches the system's brokers, ports or paths, and two runs never meet:

    with running("rabbitmq") as server:       # 5-8 s for RabbitMQ, 1-2 s for PostgreSQL, 0.1 s for Redis
        connect_to(server.url)                # amqp://guest:guest@127.0.0.1:PORT//

On exit (also after an exception) the server is stopped, every process it started is gone,
its port is free again and its folder is removed. From a shell:

    python -m load.servers                    # all three (those installed); prints `export BROKER_URL=...`
                                              # and `export DATABASE_URL=...` lines
    python -m load.servers redis --workdir var/brokers      # keep the logs there

and Ctrl-C (or SIGTERM) stops them. A missing server raises ServerMissing, saying how to install it.
"""
import argparse
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psutil

SERVERS = ("redis", "rabbitmq", "postgres")
VARIABLES = {"redis": "BROKER_URL", "rabbitmq": "BROKER_URL", "postgres": "DATABASE_URL"}   # what a demo reads
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Debian keeps the real RabbitMQ scripts here; /usr/sbin/rabbitmq-server would `su rabbitmq` as root.
SEARCH_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin")
# Debian keeps PostgreSQL's server programs out of PATH, in one folder per major version.
POSTGRES_DIRS = "/usr/lib/postgresql/*/bin"
INSTALL_HINTS = {
    "redis-server": "apt-get install redis-server` (Debian/Ubuntu) or `brew install redis",
    "rabbitmq-server": "apt-get install rabbitmq-server` (Debian/Ubuntu) or `brew install rabbitmq",
    "epmd": "apt-get install erlang-base` (Debian/Ubuntu) or `brew install erlang",
    "postgres": "apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql",
}


class ServerMissing(RuntimeError):
    """The server's program is not installed; the message says how to install it."""


class ServerFailed(RuntimeError):
    """The server did not start (or stop); the message ends with the tail of its log."""


@dataclass
class Server:
    """A running server: ``url`` is what a client needs (kombu for the brokers, psycopg for PostgreSQL)."""
    name: str
    url: str
    port: int
    pid: int                                  # the server process (RabbitMQ: the Erlang VM; PostgreSQL: the postmaster)
    folder: Path                              # its data and logs
    pids: list[int] = field(default_factory=list)   # every process started for it


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """A new server could listen on ``port`` (with SO_REUSEADDR, as servers do: connections that
    are still closing, in TIME_WAIT, don't count; anything listening does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def find(program: str) -> str:
    """The path of ``program`` (the system's PATH, the usual sbin folders, then Debian's PostgreSQL
    folders, newest version first), or ServerMissing."""
    postgres = sorted(glob.glob(POSTGRES_DIRS), key=lambda d: [int(n) for n in re.findall(r"\d+", d)], reverse=True)
    search = os.pathsep.join([*SEARCH_DIRS[:1], os.environ.get("PATH", os.defpath), *SEARCH_DIRS[1:], *postgres])
    path = shutil.which(program, path=search)
    if not path:
        raise ServerMissing(f"{program} not found: install it with `{INSTALL_HINTS[program]}`")
    return path


@contextlib.contextmanager
def running(name: str, workdir: str | None = None) -> Iterator[Server]:
    """Start ``name`` (one of SERVERS), yield it once it answers, stop it completely on exit.

    Its files go to a new temp folder, removed afterwards; with ``workdir`` they go to
    ``workdir/<name>-<port>`` instead and are kept (the logs are worth reading).
    """
    starters = {"redis": _start_redis, "rabbitmq": _start_rabbitmq, "postgres": _start_postgres}
    if name not in starters:
        raise ValueError(f"unknown server {name!r}: choose from {', '.join(SERVERS)}")
    port = free_port()
    if workdir:
        folder = Path(workdir).resolve() / f"{name}-{port}"
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    with contextlib.ExitStack() as cleanup:
        if not workdir:
            cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        yield starters[name](port, folder, cleanup)


# --- Redis ----------------------------------------------------------------------------------

def _start_redis(port: int, folder: Path, cleanup: contextlib.ExitStack) -> Server:
    log = folder / "redis.log"
    process = _spawn([find("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                      "--dir", str(folder), "--logfile", str(log), "--save", "", "--appendonly", "no",
                      "--daemonize", "no"], folder / "stdout.log")
    cleanup.callback(_stop_tree, process)
    _wait_until(lambda: _redis_ping(port), process, [log, folder / "stdout.log"], "Redis")
    return Server("redis", f"redis://127.0.0.1:{port}/0", port, process.pid, folder, [process.pid])


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


# --- RabbitMQ -------------------------------------------------------------------------------

def _start_rabbitmq(port: int, folder: Path, cleanup: contextlib.ExitStack) -> Server:
    server_script = find("rabbitmq-server")
    ctl = str(Path(server_script).with_name("rabbitmqctl"))   # the script next to it, not a wrapper
    node = f"rabbit-{port}@localhost"
    epmd_port, dist_port = free_port(), free_port()
    loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}"
    (folder / "enabled_plugins").write_text("[].\n")
    (folder / "rabbitmq-env.conf").write_text("")              # instead of /etc/rabbitmq's
    (folder / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n"
                                          "log.console = false\nlog.file.level = info\n")
    env = {
        **os.environ,
        "HOME": str(folder),                                  # the Erlang cookie is written here
        "ERL_CRASH_DUMP": str(folder / "erl_crash.dump"),      # not into the caller's folder
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback_dist,
        "RABBITMQ_CTL_ERL_ARGS": loopback_dist,
        # A private epmd (Erlang's name server) on loopback, so no other node on the machine shares it.
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    epmd_program = find("epmd")
    epmd = _spawn([epmd_program, "-port", str(epmd_port), "-address", "127.0.0.1"], folder / "epmd.log", env)
    cleanup.callback(_stop_tree, epmd, lambda: subprocess.run(
        [epmd_program, "-port", str(epmd_port), "-kill"], env=env, capture_output=True, timeout=10))
    _wait_until(lambda: _accepts(epmd_port), epmd, [folder / "epmd.log"], "epmd")

    stdout = folder / "stdout.log"
    wrapper = _spawn([server_script], stdout, env)               # a shell script running the Erlang VM
    cleanup.callback(_stop_tree, wrapper, lambda: subprocess.run(   # if it fails: SIGTERM
        [ctl, "-n", node, "stop"], env=env, capture_output=True, timeout=STOP_TIMEOUT_S, check=True,
        start_new_session=True))
    logs = [stdout, folder / "log" / f"{node}.log"]
    url = f"amqp://guest:guest@127.0.0.1:{port}//"
    _wait_until(lambda: _amqp_ready(url), wrapper, logs, "RabbitMQ")
    beam = int((folder / "rabbitmq.pid").read_text().strip())
    return Server("rabbitmq", url, port, beam, folder, [wrapper.pid, beam, epmd.pid])


def _amqp_ready(url: str) -> bool:
    import kombu                                               # only RabbitMQ needs it
    with kombu.Connection(url, connect_timeout=1) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0)   # our loop does the waiting
        return True


# --- PostgreSQL -----------------------------------------------------------------------------

POSTGRES_DATABASE = "registrations"   # created at start: the chapter 4 demo's database


def _start_postgres(port: int, folder: Path, cleanup: contextlib.ExitStack) -> Server:
    postgres = find("postgres")
    initdb = Path(postgres).resolve().with_name("initdb")      # the same version's, next to it
    if not initdb.exists():
        raise ServerMissing(f"{initdb} not found: install it with `{INSTALL_HINTS['postgres']}`")
    # PostgreSQL refuses to run as root: as root, the system's postgres user runs it and owns the folder.
    user = _postgres_user() if os.geteuid() == 0 else None
    if user:
        shutil.chown(folder, user, user)
    data = folder / "data"
    initdb_log = folder / "initdb.log"
    with open(initdb_log, "ab") as out:
        done = subprocess.run([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
                               "--no-locale", "-E", "UTF8"], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, cwd=folder, timeout=START_TIMEOUT_S, **_as_user(user))
    if done.returncode:
        hint = f" (it runs as {user}: every folder above {folder} must let others in, o+x)" if user else ""
        raise ServerFailed(f"initdb exited with code {done.returncode}{hint}\n--- {initdb_log}:\n{_tail(initdb_log)}")
    log = folder / "postgres.log"
    # fsync=off: a throwaway server for tests and demos, fast, and not safe against a machine crash.
    # 200 connections: the demo keeps one per thread, and the parallel variant has up to 80 threads.
    process = _spawn([postgres, "-D", str(data), "-k", str(folder), "-h", "127.0.0.1", "-p", str(port),
                      "-c", "fsync=off", "-c", "max_connections=200"], log, user=user)
    cleanup.callback(_stop_tree, process, lambda: process.send_signal(signal.SIGINT))   # "fast" shutdown
    _wait_until(lambda: _postgres_ready(f"postgresql://postgres@127.0.0.1:{port}/postgres"),
                process, [log], "PostgreSQL")
    url = create_database(f"postgresql://postgres@127.0.0.1:{port}/postgres", POSTGRES_DATABASE)
    return Server("postgres", url, port, process.pid, folder, [process.pid])


def _postgres_user() -> str:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerFailed("PostgreSQL refuses to run as root and there is no `postgres` user to run it: "
                           "run as another user, or create one (`useradd --system postgres`)") from None
    return "postgres"


def _as_user(user: str | None) -> dict:
    """Popen's arguments to run as ``user`` (its own group, none of ours), or nothing."""
    return dict(user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[]) if user else {}


def _postgres_ready(url: str) -> bool:
    import psycopg                                             # only PostgreSQL needs it
    with psycopg.connect(url, connect_timeout=1) as db:
        return db.execute("SELECT 1").fetchone() == (1,)


def create_database(server_url: str, name: str) -> str:
    """Create the empty database ``name`` on the PostgreSQL server of ``server_url``; return its URL."""
    import psycopg
    from psycopg import sql
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as db:
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urllib.parse.urlsplit(server_url)._replace(path=f"/{name}").geturl()


def drop_database(server_url: str, name: str) -> None:
    """Drop the database ``name`` on the server of ``server_url``, closing whatever is connected to it."""
    import psycopg
    from psycopg import sql
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- processes ------------------------------------------------------------------------------

def _spawn(argv: list[str], log: Path, env: dict | None = None, user: str | None = None) -> subprocess.Popen:
    """Start ``argv`` (as ``user``, if given) in a session of its own (a Ctrl-C in the terminal
    does not reach it)."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=log.parent, start_new_session=True, **_as_user(user))


def _stop_tree(process: subprocess.Popen, stop: Callable[[], object] | None = None) -> None:
    """Stop ``process`` with ``stop()`` (or SIGTERM), wait, then SIGKILL whatever is left of it:
    its process group and every process under it (Erlang's helpers leave the group)."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)   # now: orphans can't be found later
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        try:
            (stop or process.terminate)()
        except Exception:                                      # e.g. rabbitmqctl failed: SIGTERM it is
            process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_S)
    _, left = psutil.wait_procs(tree, timeout=5 if process.poll() is not None else 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)                 # the last resort
    for child in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait()
    psutil.wait_procs(left, timeout=5)


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen, logs: list[Path], what: str,
                timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll ``ready()`` until true; ServerFailed with the logs' tails if the process ends or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            problem = f"{what} exited with code {process.returncode}"
            break
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() > deadline:
            problem = f"{what} did not answer within {timeout_s:.0f} s"
            break
        time.sleep(0.1)
    tails = "\n".join(f"--- {log}:\n{_tail(log)}" for log in logs if log.exists() and log.stat().st_size)
    raise ServerFailed(f"{problem}\n{tails}")


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- command line ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.servers", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("servers", nargs="*", metavar="SERVER",
                        help=f"which to start: any of {', '.join(SERVERS)} (default: all)")
    parser.add_argument("--workdir", help="keep each server's data and logs in a folder under here")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(args.servers or SERVERS))
    if unknown := set(names) - set(SERVERS):
        parser.error(f"unknown server {', '.join(sorted(unknown))}: choose from {', '.join(SERVERS)}")
    for sig in (signal.SIGINT, signal.SIGTERM):                # even if started with SIGINT ignored (`&`)
        signal.signal(sig, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            started = []
            for name in names:
                try:
                    server = stack.enter_context(running(name, args.workdir))
                except ServerMissing as missing:
                    if args.servers or (name == names[-1] and not started):   # asked for, or none at all
                        raise
                    print(f"# skipped {name}: {missing}", flush=True)
                    continue
                started.append(name)
                print(f"# {name} on 127.0.0.1:{server.port} (pid {server.pid}, files in {server.folder})")
                print(f"export {VARIABLES[name]}={server.url}", flush=True)
            print("# running; Ctrl-C stops them", flush=True)
            try:
                while True:
                    signal.pause()
            except KeyboardInterrupt:
                print("# stopping...", flush=True)
    except (ServerMissing, ServerFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:                                  # while starting
        print("# interrupted: stopped what had started", flush=True)
        return 130
    print(f"# stopped {' and '.join(started)}", flush=True)
    return 0


def _interrupt(signum, frame):
    for sig in (signal.SIGINT, signal.SIGTERM):                # once: a second one must not cut the clean-up
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
