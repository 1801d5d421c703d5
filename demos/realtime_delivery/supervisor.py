"""The fork supervisor behind ``server.py --processes N``: N workers on the same listening sockets.

The parent has bound the sockets before it forks, so every worker accepts on them and the kernel
hands each new connection to one of them. The parent then only watches: it restarts a worker that
dies (once a second at most, if one dies again and again) and, on SIGTERM or SIGINT, stops them
all (SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``). A worker whose parent is SIGKILLed stops too
(``stop_when_orphaned``) rather than serving on unsupervised.

gevent's ``fork_and_watch`` reinitialises the event loop in each child and reports each child's
exit to the parent's loop; import this module after gevent's monkey-patching, as ``server`` does.
"""
import os
import signal
import sys
import traceback
from typing import Callable

import gevent
from gevent.event import Event
from gevent.os import fork_and_watch
from gevent.queue import Queue

RESTART_DELAY_S = 1.0     # a worker that dies at once, again and again, is restarted once a second
STOP_TIMEOUT_S = 5.0      # after SIGTERM, how long workers have before SIGKILL


def exit_reason(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def stop_when_orphaned(parent_pid: int, stop: Event) -> None:
    """A worker whose parent is gone (SIGKILLed) stops too, rather than serving on unsupervised."""
    while os.getppid() == parent_pid:
        gevent.sleep(1.0)
    stop.set()


def supervise(count: int, work: Callable[[str, int], int], announce: Callable[[list[int]], None]) -> int:
    """Fork ``count`` workers, each running ``work(name, parent_pid)`` (its exit code); restart any
    that dies; stop them all on SIGTERM or SIGINT. ``announce(pids)`` once all have been forked."""
    stopping, exits = Event(), Queue()
    workers: dict[int, int] = {}   # pid -> worker number

    def on_signal() -> None:
        stopping.set()
        exits.put_nowait(None)     # wakes the loop below

    handlers = [gevent.signal_handler(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)]
    parent_pid = os.getpid()

    def start(number: int) -> None:
        # ref=True: the watcher keeps the parent's event loop running while the worker lives
        pid = fork_and_watch(callback=lambda watcher: exits.put_nowait((watcher.pid, watcher.rstatus)), ref=True)
        if pid == 0:   # the worker: never returns into the parent's code
            code = 1
            try:
                for handler in handlers:
                    handler.cancel()
                code = work(f"worker {number}", parent_pid)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        workers[pid] = number

    for number in range(1, count + 1):
        start(number)
    announce(list(workers))

    while not stopping.is_set():
        event = exits.get()
        if event is None or event[0] not in workers:
            continue
        pid, status = event
        number = workers.pop(pid)
        print(f"worker {number} (pid {pid}) {exit_reason(status)}; restarting it", flush=True)
        if stopping.wait(RESTART_DELAY_S):   # it died because everything is stopping: no restart
            break
        start(number)

    print(f"stopping {len(workers)} workers", flush=True)
    for pid in workers:
        with_pid_gone(os.kill, pid, signal.SIGTERM)
    with gevent.Timeout(STOP_TIMEOUT_S, False):
        while workers:
            event = exits.get()
            if event is not None:
                workers.pop(event[0], None)
    for pid in workers:   # still there after the grace period
        print(f"worker (pid {pid}) did not stop within {STOP_TIMEOUT_S:g} s: SIGKILL", flush=True)
        with_pid_gone(os.kill, pid, signal.SIGKILL)
    return 0


def with_pid_gone(call, pid: int, *args) -> None:
    try:
        call(pid, *args)
    except ProcessLookupError:
        pass
