"""Faults on purpose: SIGKILL a service in the middle of a load, bring it back on the same port.

In a scenario, around a Locust run (the harness's ``Run.fault``; a background thread)::

    with run.fault(service, kill_after_s=3, down_s=10):
        run.locust(...)

kills ``service`` (a harness ``Service`` or a ``load.servers.Server``: anything with ``name``,
``kill()`` and ``start()``) 3 s into the block and starts it again 10 s later with the same
command, environment, port and data. When the block ends first, a service not yet killed is
left alone and one that is down is started at once; either way the block never leaves it down.
The run's ``notes["faults"]`` gets the wall-clock times (``killed_at``, ``restarted_at``,
``ready_at``), so a notebook can shade the outage.

By hand, on any process listening on a loopback port::

    python -m load.faults kill-restart --port 8000 --down 10

finds the process listening on 127.0.0.1:8000, remembers its command line, working directory and
environment, SIGKILLs its process group, waits 10 s, starts the same command again (output to a
log file), waits until the port answers and prints what it did, with the timings.
"""
import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import psutil

from load.processes import alive, port_answers, spawn

RESTART_TIMEOUT_S = 120.0     # the longest a fault waits for its target's start() (RabbitMQ: 5-8 s)


class Fault:
    """SIGKILL ``target`` ``kill_after_s`` into the block, start it again ``down_s`` later."""

    def __init__(self, target, kill_after_s: float, down_s: float):
        self.target, self.kill_after_s, self.down_s = target, kill_after_s, down_s
        self.record = {"target": target.name, "kill_after_s": kill_after_s, "down_s": down_s,
                       "killed_at": None, "restarted_at": None, "ready_at": None}
        self.error: Optional[BaseException] = None
        self._block_ended = threading.Event()
        self._thread = threading.Thread(target=self._inject, name=f"fault {target.name}", daemon=True)

    def _inject(self) -> None:
        if self._block_ended.wait(self.kill_after_s):
            return                                   # the block ended first: no fault
        self.record["killed_at"] = time.time()
        try:
            self.target.kill()
            self._block_ended.wait(self.down_s)      # the end of the block cuts the outage short
            self.record["restarted_at"] = time.time()
            self.target.start()
            self.record["ready_at"] = time.time()
        except BaseException as error:               # reported by __exit__, in the caller's thread
            self.error = error
            self.record["error"] = str(error)

    def __enter__(self) -> "Fault":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._block_ended.set()
        self._thread.join(RESTART_TIMEOUT_S)
        if self._thread.is_alive():
            self.error = TimeoutError(f"{self.target.name} did not restart within {RESTART_TIMEOUT_S:g} s")
            self.record["error"] = str(self.error)
        if self.error is not None and exc_info[0] is None:
            raise RuntimeError(f"fault on {self.target.name}: could not bring it back") from self.error


# --- by hand: python -m load.faults kill-restart --port PORT --down SECONDS ------------------

def listener_on(port: int) -> psutil.Process:
    """The outermost process listening on 127.0.0.1:``port`` (a forking server's parent, not one
    of the workers that share its socket)."""
    pids = {c.pid for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid
            and c.laddr.ip in ("127.0.0.1", "0.0.0.0", "::", "::1", "::ffff:127.0.0.1")}
    if not pids:
        raise SystemExit(f"error: no process of yours listens on 127.0.0.1:{port}")
    process = psutil.Process(min(pids))
    while (parent := process.parent()) is not None and parent.pid in pids:
        process = parent
    return process


def kill_group(process: psutil.Process) -> str:
    """SIGKILL ``process``'s process group (or, if it shares ours, only it and its descendants:
    this command must not kill itself or the shell that runs it); say what was killed."""
    tree = [process, *process.children(recursive=True)]
    group = os.getpgid(process.pid)
    if group != os.getpgrp():
        os.killpg(group, signal.SIGKILL)
        what = f"process group {group}"
    else:
        what = f"pid {process.pid} and its {len(tree) - 1} descendant(s) (it shares this command's group)"
    for each in tree:
        if alive(each):
            each.kill()
    psutil.wait_procs(tree, timeout=10)
    return what


def kill_restart(port: int, down_s: float, timeout_s: float, log: Path) -> int:
    process = listener_on(port)
    with process.oneshot():
        argv, cwd, env = process.cmdline(), process.cwd(), process.environ()
        uid, gid = process.uids().real, process.gids().real
    as_its_user = dict(user=uid, group=gid, extra_groups=[]) if uid != os.geteuid() else {}   # e.g. postgres
    if argv and " " in argv[0] and not os.path.exists(argv[0]):
        # redis-server rewrites its process title ("redis-server 127.0.0.1:6379"): its arguments are gone
        raise SystemExit(f"error: pid {process.pid} rewrote its command line ({argv[0]!r}), so it cannot be started "
                         "again the same way; for a server of `python -m load.servers`, send that command "
                         "SIGUSR1 (SIGKILL its servers) and SIGUSR2 (start them again on the same ports and data)")
    print(f"found pid {process.pid} listening on 127.0.0.1:{port}: {shlex.join(argv)} (in {cwd})", flush=True)
    killed_at = time.time()
    print(f"{clock(killed_at)} SIGKILL to {kill_group(process)}; down for {down_s:g} s", flush=True)
    time.sleep(down_s)
    restarted_at = time.time()
    new = spawn(argv, log, env=env, cwd=Path(cwd), **as_its_user)
    print(f"{clock(restarted_at)} started it again as pid {new.pid} (output in {log})", flush=True)
    deadline = time.monotonic() + timeout_s
    while not port_answers(port):
        if new.poll() is not None or time.monotonic() > deadline:
            why = f"exited with code {new.returncode}" if new.poll() is not None else f"silent after {timeout_s:g} s"
            print(f"error: the restarted process {why}; see {log}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    ready_at = time.time()
    print(f"{clock(ready_at)} port {port} answers again", flush=True)
    print(f"down {ready_at - killed_at:.2f} s: killed_at {killed_at:.3f}, restarted_at {restarted_at:.3f}, "
          f"ready_at {ready_at:.3f} (start to ready {ready_at - restarted_at:.2f} s)", flush=True)
    return 0


def clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.faults", description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "kill-restart", help="SIGKILL what listens on a loopback port, wait, start the same command again",
        description="Find the process listening on 127.0.0.1:PORT, remember its command line, working "
                    "directory and environment, SIGKILL its process group, wait DOWN seconds, start the "
                    "same command again (its output to --log) and wait until the port answers. Prints "
                    "what it did and the wall-clock times: killed_at, restarted_at, ready_at.")
    command.add_argument("--port", type=int, required=True, help="the TCP port the service listens on")
    command.add_argument("--down", type=float, default=10.0, metavar="SECONDS",
                         help="how long it stays down (default 10)")
    command.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                         help="how long the restarted process has to answer on the port (default 60)")
    command.add_argument("--log", type=Path, help="where the restarted process writes "
                         "(default: kill-restart-PORT.log in the temp folder)")
    args = parser.parse_args(argv)
    log = args.log or Path(tempfile.gettempdir()) / f"kill-restart-{args.port}.log"
    return kill_restart(args.port, args.down, args.timeout, log.resolve())


if __name__ == "__main__":
    sys.exit(main())
