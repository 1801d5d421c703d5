"""Real Redis, RabbitMQ and PostgreSQL, started for the tests and for readers, and stopped completely.

Each server runs on a free loopback port with all its files in its own folder, so nothing
touches the system's brokers, ports or paths, and two runs never meet:

    with running("rabbitmq") as server:       # 5-8 s for RabbitMQ, 1-2 s for PostgreSQL, 0.1 s for Redis
        connect_to(server.url)                # amqp://guest:guest@127.0.0.1:PORT//
        server.kill()                         # SIGKILL, as a crash: the server and all it started
        server.start()                        # the same port and the same data folder
        server.restart()                      # a clean stop, then a start

On exit (also after an exception) the server is stopped, every process it started is gone,
its port is free again and its folder is removed. Redis keeps nothing on disk unless asked:
``running("redis", appendonly=True)`` writes its append-only file and fsyncs it before it answers
(``appendfsync always``), so a SIGKILL loses nothing Redis acknowledged. Redis's own default,
``everysec``, is not enough for that: while a background fsync is slow it holds writes back for up
to two seconds and answers the clients anyway, and a SIGKILL then loses acknowledged writes (a CI
run lost queued jobs that way).
RabbitMQ keeps durable queues and persistent messages, PostgreSQL its committed rows, across
``kill()`` and ``start()``.

One name per kind of setting, the one the demos read:

    BROKER_URL      messaging (RabbitMQ; or Redis used as the broker)
    DATABASE_URL    SQL (PostgreSQL)
    REDIS_URL       Redis used as a data store

From a shell:

    python -m load.servers                    # all three (those installed); prints `export REDIS_URL=...`
                                              # (and Redis as a broker, commented), `export BROKER_URL=...`
                                              # for RabbitMQ and `export DATABASE_URL=...`
    python -m load.servers redis --appendonly --workdir var/servers   # keep the files there

and Ctrl-C (or SIGTERM) stops them. A missing server raises ServerMissing, saying how to install
it; ``missing(name)`` says it without starting anything.
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
import urllib.parse
from pathlib import Path
from typing import Callable, Iterator, Optional

from load.processes import StartFailed, free_port, kill_tree, port_is_free, spawn, stop_tree, tail, wait_until_ready

__all__ = ["SERVERS", "Server", "ServerMissing", "ServerFailed", "running", "missing", "required", "find", "free_port",
           "port_is_free", "create_database", "drop_database", "database_for_run"]

SERVERS = ("redis", "rabbitmq", "postgres")
VARIABLES = {"redis": "REDIS_URL", "rabbitmq": "BROKER_URL", "postgres": "DATABASE_URL"}   # what a demo reads
ALTERNATIVES = {"redis": "BROKER_URL"}      # Redis can be the broker too: printed as a comment
PROGRAMS = {"redis": ("redis-server",), "rabbitmq": ("rabbitmq-server", "epmd"), "postgres": ("postgres",)}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
DIST_PORT_TRIES = 3   # RabbitMQ: starts tried when its free distribution port was taken meanwhile
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
POSTGRES_DATABASE = "registrations"   # created at the first start: the chapter 4 demo's database


class ServerMissing(RuntimeError):
    """The server's program is not installed; the message says how to install it."""


class ServerFailed(StartFailed):
    """The server did not start (or stop); the message ends with the tail of its log."""


def find(program: str) -> str:
    """The path of ``program`` (the system's PATH, the usual sbin folders, then Debian's PostgreSQL
    folders, newest version first), or ServerMissing."""
    postgres = sorted(glob.glob(POSTGRES_DIRS), key=lambda d: [int(n) for n in re.findall(r"\d+", d)], reverse=True)
    search = os.pathsep.join([*SEARCH_DIRS[:1], os.environ.get("PATH", os.defpath), *SEARCH_DIRS[1:], *postgres])
    path = shutil.which(program, path=search)
    if not path:
        raise ServerMissing(f"{program} not found: install it with `{INSTALL_HINTS[program]}`")
    return path


def required() -> bool:
    """``REQUIRE_SERVERS`` is set to 1, true or yes (any case), as in CI: a missing server is an error."""
    return os.environ.get("REQUIRE_SERVERS", "").strip().lower() in ("1", "true", "yes")


def missing(name: str) -> Optional[str]:
    """How to install what ``name`` (one of SERVERS) needs, if a program of it is missing; else None."""
    try:
        for program in PROGRAMS[name]:
            find(program)
        if name == "postgres":
            _initdb(find("postgres"))
    except ServerMissing as problem:
        return str(problem)
    return None


@contextlib.contextmanager
def running(name: str, workdir: Optional[str] = None, *, appendonly: bool = False) -> Iterator["Server"]:
    """Start ``name`` (one of SERVERS), yield it once it answers, stop it completely on exit.

    Its files go to a new temp folder, removed afterwards; with ``workdir`` they go to
    ``workdir/<name>-<port>`` instead and are kept (the logs are worth reading). ``appendonly``
    (Redis only): keep every write in the append-only file, so data survives a kill.
    """
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}: choose from {', '.join(SERVERS)}")
    if appendonly and name != "redis":
        raise ValueError("appendonly is Redis's setting; RabbitMQ and PostgreSQL always keep their data")
    port = free_port()
    if workdir:
        folder = Path(workdir).resolve() / f"{name}-{port}"
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    server = Server(name, port, folder, appendonly=appendonly)
    with contextlib.ExitStack() as cleanup:
        if not workdir:
            cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        cleanup.callback(server.stop)
        yield server.start()


class Server:
    """A real server on a fixed loopback port with its files in ``folder``. ``url`` is what a client
    needs (kombu for the brokers, psycopg for PostgreSQL). ``start()``, ``kill()`` (SIGKILL, as a
    crash), ``stop()`` (clean) and ``restart()`` keep the same port and the same data."""

    def __init__(self, name: str, port: int, folder: Path, *, appendonly: bool = False):
        self.name, self.port, self.folder, self.appendonly = name, port, folder, appendonly
        self.url = {"redis": f"redis://127.0.0.1:{port}/0",
                    "rabbitmq": f"amqp://guest:guest@127.0.0.1:{port}//",
                    "postgres": f"postgresql://postgres@127.0.0.1:{port}/{POSTGRES_DATABASE}"}[name]
        self.pid: Optional[int] = None   # the server process (RabbitMQ: the Erlang VM; PostgreSQL: the postmaster)
        self.pids: list[int] = []        # every process started for it
        self.processes: list[tuple[subprocess.Popen, Optional[Callable]]] = []   # with how to stop each
        self.helpers: list[tuple[subprocess.Popen, Optional[Callable]]] = []     # outlive a kill (epmd)
        self.started = 0                 # how many times it was started
        self.erlang_ports: Optional[tuple[int, int]] = None   # RabbitMQ: epmd's and the node's

    def __repr__(self) -> str:
        return f"<Server {self.name} {self.url} pid {self.pid}>"

    def start(self) -> "Server":
        """Start it (again) on its port with its data; return once it answers."""
        if self.processes:
            raise RuntimeError(f"{self.name} on port {self.port} is already started")
        {"redis": self._start_redis, "rabbitmq": self._start_rabbitmq, "postgres": self._start_postgres}[self.name]()
        self.started += 1
        return self

    def kill(self) -> None:
        """SIGKILL the server and everything it started, at once: a crash. Its files stay."""
        for process, _ in reversed(self.processes):
            kill_tree(process)
        self.processes = []

    def stop(self) -> None:
        """Stop it cleanly (its own way, then SIGKILL for what is left), helpers included."""
        for process, stop in [*reversed(self.processes), *reversed(self.helpers)]:
            stop_tree(process, stop, STOP_TIMEOUT_S)
        self.processes, self.helpers = [], []

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def spawn(self, argv: list, log: Path, *, env: Optional[dict] = None, stop: Optional[Callable] = None,
              helper: bool = False, user: Optional[str] = None) -> subprocess.Popen:
        process = spawn([str(arg) for arg in argv], log, env=env, **_as_user(user))
        (self.helpers if helper else self.processes).append((process, stop))
        return process

    def wait_until(self, ready: Callable[[], object], process: subprocess.Popen, logs: list[Path], what: str) -> None:
        wait_until_ready(ready, process, what, logs=logs, timeout_s=START_TIMEOUT_S, failure=ServerFailed)

    # --- Redis ------------------------------------------------------------------------------

    def _start_redis(self) -> None:
        log, stdout = self.folder / "redis.log", self.folder / "stdout.log"
        process = self.spawn([find("redis-server"), "--port", self.port, "--bind", "127.0.0.1",
                              "--dir", self.folder, "--logfile", log, "--save", "",
                              "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                              "--daemonize", "no"], stdout)
        self.wait_until(lambda: _redis_ping(self.port), process, [log, stdout], "Redis")
        self.pid, self.pids = process.pid, [process.pid]

    # --- RabbitMQ ---------------------------------------------------------------------------

    def _start_rabbitmq(self) -> None:
        server_script = find("rabbitmq-server")
        ctl = str(Path(server_script).with_name("rabbitmqctl"))   # the script next to it, not a wrapper
        node = f"rabbit-{self.port}@localhost"
        env = self._rabbitmq_env(node)
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq-env.conf").write_text("")              # instead of /etc/rabbitmq's
        (self.folder / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                                                   "log.console = false\nlog.file.level = info\n")
        if not self.helpers:
            # A private epmd (Erlang's name server) on loopback, so no other node on the machine shares it.
            # It outlives a kill of the node, as the system's epmd would.
            epmd_program, epmd_port = find("epmd"), env["ERL_EPMD_PORT"]
            epmd = self.spawn([epmd_program, "-port", epmd_port, "-address", "127.0.0.1"], self.folder / "epmd.log",
                              env=env, helper=True, stop=lambda: subprocess.run(
                                  [epmd_program, "-port", epmd_port, "-kill"], env=env, capture_output=True, timeout=10))
            self.wait_until(lambda: _accepts(int(epmd_port)), epmd, [self.folder / "epmd.log"], "epmd")
        stdout = self.folder / "stdout.log"
        for attempt in range(1, DIST_PORT_TRIES + 1):
            (self.folder / "rabbitmq.pid").unlink(missing_ok=True)    # a killed node's
            env = self._rabbitmq_env(node)
            wrapper = self.spawn([server_script], stdout, env=env,       # a shell script running the Erlang VM
                                 stop=lambda env=env: subprocess.run(     # if it fails: SIGTERM
                                     [ctl, "-n", node, "stop"], env=env, capture_output=True, timeout=STOP_TIMEOUT_S,
                                     check=True, start_new_session=True))
            try:
                self.wait_until(lambda: _amqp_ready(self.url), wrapper, [stdout, self.folder / "log" / f"{node}.log"],
                                "RabbitMQ")
                break
            except ServerFailed as failure:
                # The free distribution port was taken between our choice and the node's bind (an
                # outgoing connection's ephemeral port on a busy machine): choose another, try again.
                if "dist_port_already_used" not in str(failure) or attempt == DIST_PORT_TRIES:
                    raise
                kill_tree(wrapper)
                self.processes.pop()
                self.erlang_ports = (self.erlang_ports[0], free_port())
        beam = int((self.folder / "rabbitmq.pid").read_text().strip())
        self.pid, self.pids = beam, [wrapper.pid, beam, self.helpers[0][0].pid]

    def _rabbitmq_env(self, node: str) -> dict:
        self.erlang_ports = self.erlang_ports or (free_port(), free_port())   # epmd's and the node's, kept
        epmd_port, dist_port = self.erlang_ports
        if not _bindable(dist_port):
            # A killed node's distribution connections linger in TIME_WAIT on its port (RabbitMQ's
            # start-up check binds without SO_REUSEADDR and refuses it: "dist_port_already_used"),
            # or another program took the port meanwhile: the node takes a new one (its clients use
            # the AMQP port, which stays).
            dist_port = free_port()
            self.erlang_ports = (epmd_port, dist_port)
        loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}"
        folder = self.folder
        return {
            **os.environ,
            "HOME": str(folder),                                  # the Erlang cookie is written here
            "ERL_CRASH_DUMP": str(folder / "erl_crash.dump"),      # not into the caller's folder
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
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
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    # --- PostgreSQL -------------------------------------------------------------------------

    def _start_postgres(self) -> None:
        postgres = find("postgres")
        # PostgreSQL refuses to run as root: as root, the system's postgres user runs it and owns the folder.
        user = _postgres_user() if os.geteuid() == 0 else None
        data = self.folder / "data"
        if not data.exists():
            self._initdb(postgres, data, user)
        log = self.folder / "postgres.log"
        # fsync=off: a throwaway server for tests and demos, fast, and not safe against a machine crash
        # (a SIGKILL of PostgreSQL alone loses nothing committed: the operating system still has it).
        # 200 connections: the demo keeps one per thread, and the parallel variant has up to 80 threads.
        process = self.spawn([postgres, "-D", data, "-k", self.folder, "-h", "127.0.0.1", "-p", self.port,
                              "-c", "fsync=off", "-c", "max_connections=200"], log, user=user,
                             stop=lambda: process.send_signal(signal.SIGINT))   # "fast" shutdown
        server_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.wait_until(lambda: _postgres_ready(server_url), process, [log], "PostgreSQL")
        if not self.started:
            create_database(server_url, POSTGRES_DATABASE)
        self.pid, self.pids = process.pid, [process.pid]

    def _initdb(self, postgres: str, data: Path, user: Optional[str]) -> None:
        initdb = _initdb(postgres)
        if user:
            shutil.chown(self.folder, user, user)
        initdb_log = self.folder / "initdb.log"
        with open(initdb_log, "ab") as out:
            done = subprocess.run([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
                                   "--no-locale", "-E", "UTF8"], stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=self.folder, timeout=START_TIMEOUT_S,
                                  **_as_user(user))
        if done.returncode:
            hint = f" (it runs as {user}: every folder above {self.folder} must let others in, o+x)" if user else ""
            raise ServerFailed(f"initdb exited with code {done.returncode}{hint}\n--- {initdb_log}:\n{tail(initdb_log)}")


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def _bindable(port: int) -> bool:
    """A listener could bind ``port`` on loopback without SO_REUSEADDR (nothing in TIME_WAIT either)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _amqp_ready(url: str) -> bool:
    import kombu                                               # only RabbitMQ needs it
    with kombu.Connection(url, connect_timeout=1) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0)   # our loop does the waiting
        return True


def _initdb(postgres: str) -> Path:
    initdb = Path(postgres).resolve().with_name("initdb")      # the same version's, next to it
    if not initdb.exists():
        raise ServerMissing(f"{initdb} not found: install it with `{INSTALL_HINTS['postgres']}`")
    return initdb


def _postgres_user() -> str:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerFailed("PostgreSQL refuses to run as root and there is no `postgres` user to run it: "
                           "run as another user, or create one (`useradd --system postgres`)") from None
    return "postgres"


def _as_user(user: Optional[str]) -> dict:
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


def database_for_run(server_url: str, run_dir: Path) -> str:
    """An empty database on ``server_url``'s PostgreSQL server named after the run
    (``<scenario>_<run>_rep-<k>``, a rerun replacing it, as it does the run's folder); its URL."""
    name = "_".join(run_dir.parts[-3:]).replace("-", "_").replace(".", "_")
    drop_database(server_url, name)
    return create_database(server_url, name)


# --- command line ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.servers", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("servers", nargs="*", metavar="SERVER",
                        help=f"which to start: any of {', '.join(SERVERS)} (default: all)")
    parser.add_argument("--workdir", help="keep each server's data and logs in a folder under here")
    parser.add_argument("--appendonly", action="store_true",
                        help="Redis: keep every write in its append-only file, fsynced before each answer (it survives a kill)")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(args.servers or SERVERS))
    if unknown := set(names) - set(SERVERS):
        parser.error(f"unknown server {', '.join(sorted(unknown))}: choose from {', '.join(SERVERS)}")
    for sig in (signal.SIGINT, signal.SIGTERM):                # even if started with SIGINT ignored (`&`)
        signal.signal(sig, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            started, servers = [], []
            for name in names:
                try:
                    server = stack.enter_context(running(name, args.workdir,
                                                         appendonly=args.appendonly and name == "redis"))
                except ServerMissing as problem:
                    if args.servers or (name == names[-1] and not started):   # asked for, or none at all
                        raise
                    print(f"# skipped {name}: {problem}", flush=True)
                    continue
                started.append(name)
                servers.append(server)
                print(f"# {name} on 127.0.0.1:{server.port} (pid {server.pid}, files in {server.folder})")
                print(f"export {VARIABLES[name]}={server.url}", flush=True)
                if name in ALTERNATIVES:
                    print(f"# or, {name} as the message broker: export {ALTERNATIVES[name]}={server.url}", flush=True)
            print(f"# running; Ctrl-C stops them. A crash by hand: kill -USR1 {os.getpid()} SIGKILLs them, "
                  f"kill -USR2 {os.getpid()} starts them again (same ports, same data)", flush=True)
            signal.signal(signal.SIGUSR1, lambda *_: _by_hand(servers, "kill"))
            signal.signal(signal.SIGUSR2, lambda *_: _by_hand(servers, "start"))
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


def _by_hand(servers: list, what: str) -> None:
    """SIGUSR1: SIGKILL every server (a crash, its files stay); SIGUSR2: start the killed ones again."""
    for server in servers:
        if what == "kill" and server.processes:
            server.kill()
            print(f"# {server.name} SIGKILLed (port {server.port})", flush=True)
        elif what == "start" and not server.processes:
            try:
                server.start()
                print(f"# {server.name} started again on 127.0.0.1:{server.port} (pid {server.pid})", flush=True)
            except ServerFailed as error:
                print(f"# {server.name} did not start: {error}", flush=True)


def _interrupt(signum, frame):
    for sig in (signal.SIGINT, signal.SIGTERM):                # once: a second one must not cut the clean-up
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
