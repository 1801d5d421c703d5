"""Starting, watching and stopping processes: the one way the harness and load/servers.py do it.

A service or server is started in a session (and process group) of its own, its output appended
to a log file, its standard input closed: a Ctrl-C in the terminal does not reach it, a background
job does not stop it by reading the terminal, and the whole group can be signalled at once.

    process = spawn(argv, log_path, env=env)
    wait_until_ready(lambda: port_answers(port), process, "redis", logs=[log_path])
    ...
    stop_tree(process)      # SIGTERM (or a stop command), a grace period, then SIGKILL for what is left
    kill_tree(process)      # SIGKILL at once: the fault a guarantee is tested against

Stopping reaches the whole tree: the process group and every descendant, also those that left
the group (Erlang's helpers do).
"""
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

import psutil

from demos.limits import raise_open_files_limit  # noqa: F401  (one copy, shared with the demos)

STOP_GRACE_S = 5.0


class StartFailed(RuntimeError):
    """A process ended, or did not get ready in time; the message ends with its logs' tails."""


# --- ports ----------------------------------------------------------------------------------

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


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# --- starting -------------------------------------------------------------------------------

def spawn(argv: list[str], log: Path, *, env: Optional[dict] = None, cwd: Optional[Path] = None,
          **popen_options) -> subprocess.Popen:
    """Start ``argv`` in a session of its own, stdout and stderr appended to ``log`` (in ``cwd``,
    by default the log's folder; ``env`` replaces the environment when given)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd or log.parent, start_new_session=True, **popen_options)


def wait_until_ready(ready: Callable[[], object], process: subprocess.Popen, what: str, *,
                     logs: list[Path], timeout_s: float, interval_s: float = 0.1,
                     failure: type[Exception] = StartFailed) -> None:
    """Poll ``ready()`` until it is true (an exception counts as not yet). If ``process`` ends
    first or time runs out, raise ``failure`` saying which, with the tail of each log."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            problem = f"{what} exited with code {process.returncode}"
            break
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() > deadline:
            problem = f"{what} not ready after {timeout_s:.0f} s"
            break
        time.sleep(interval_s)
    tails = "\n".join(f"--- {log}:\n{tail(log)}" for log in logs if log.exists() and log.stat().st_size)
    raise failure(f"{problem}\n{tails}")


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- stopping -------------------------------------------------------------------------------

def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def signal_group(pid: int, signum: int) -> None:
    """Signal the process group that ``pid`` leads; nothing if it leads none (then no group has
    that number: a Locust started in our own group is safe from this)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def stop_tree(process: subprocess.Popen, stop: Optional[Callable[[], object]] = None,
              grace_s: float = STOP_GRACE_S) -> None:
    """Stop ``process`` with ``stop()`` (by default SIGTERM to its process group), give it
    ``grace_s`` to exit, then SIGKILL whatever is left: its group and every process under it."""
    tree = descendants(process.pid)                            # now: orphans can't be found later
    if process.poll() is None:
        try:
            (stop or (lambda: signal_group(process.pid, signal.SIGTERM)))()
        except Exception:                                      # e.g. rabbitmqctl failed: SIGTERM it is
            process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace_s)
    _, left = psutil.wait_procs(tree, timeout=min(grace_s, 5) if process.poll() is not None else 0)
    signal_group(process.pid, signal.SIGKILL)                  # the last resort
    _kill(left)
    process.wait()
    psutil.wait_procs(left, timeout=5)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL ``process``, its process group and every process under it, at once; wait for them."""
    tree = descendants(process.pid)
    signal_group(process.pid, signal.SIGKILL)
    _kill(tree)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()
    psutil.wait_procs(tree, timeout=5)


def _kill(processes: list[psutil.Process]) -> None:
    for each in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            each.kill()


# --- watching -------------------------------------------------------------------------------

def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (0 when it is gone)."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def gone(pid: int) -> bool:
    """The process ``pid`` has exited (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        return not alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie is dead, only not yet reaped)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
