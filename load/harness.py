"""The one harness: start a chapter's services, wait until they are ready, drive Locust headless,
and write ``results/<chapter>/<scenario>/<run>/rep-<k>/`` (Locust's CSVs, the raw requests, what
the services report, and ``meta.json``). Services are always stopped, on failure and Ctrl-C too.
"""
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator, Optional

import psutil

from load import ROOT
from load.faults import Fault
from load.processes import (StartFailed, alive, free_port, kill_tree, spawn, stop_tree, tree_cpu_seconds,
                            wait_until_ready)
from load.results import percentile, read_raw


SIZES = ("smoke", "default", "workshop")
PACKAGES = ("flask", "waitress", "kombu", "redis", "psycopg", "locust", "gevent", "websockets", "matplotlib")
MAX_BEHIND_FRACTION = 0.01
MAX_CORE_UTILISATION = 0.90


class ServiceFailed(StartFailed):
    """A service exited, or did not get ready, at start; the message ends with its log's tail."""


def http_ready(url: str) -> Callable[[], bool]:
    """Ready when ``url`` answers 200."""
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False
    return check


def log_ready(path: Path, text: str) -> Callable[[], bool]:
    """Ready when the service has written ``text`` to its log."""
    return lambda: path.exists() and text in path.read_text(errors="replace")


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll ``condition()`` until it returns something true (and return that), or fail saying what."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}; last: {value!r}")


def get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


class Service:
    """A subprocess in its own process group, its output appended to a log file, started when ready.
    ``kill()`` then ``start()`` (or ``restart()``) brings it back with the same command, environment
    and log: with a fixed port in its command, on the same port and data."""

    def __init__(self, name: str, argv: list[str], *, log_path: Path, ready: Callable[[], bool],
                 env: Optional[dict] = None, timeout_s: float = 30.0):
        self.name, self.argv, self.log_path, self.ready = name, argv, log_path, ready
        self.env, self.timeout_s = env, timeout_s
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Service":
        self.process = spawn(self.argv, self.log_path, env={**os.environ, **(self.env or {})}, cwd=ROOT)
        try:
            wait_until_ready(self.ready, self.process, self.name, logs=[self.log_path], timeout_s=self.timeout_s,
                             interval_s=0.05, failure=ServiceFailed)
        except ServiceFailed as failed:
            self.stop()
            what, _, tails = str(failed).partition("\n")
            raise ServiceFailed(f"{what}: {shlex.join(self.argv)}\n{tails}") from None
        return self

    def stop(self) -> None:
        """SIGTERM to its process group, then SIGKILL for whatever is left of its tree."""
        if self.process is not None:
            stop_tree(self.process)

    def kill(self) -> None:
        """SIGKILL, no grace: the fault the chapters' guarantees are tested against."""
        if self.process is not None and self.process.poll() is None:
            kill_tree(self.process)

    def restart(self) -> "Service":
        """Stop it (if it runs) and start it again: same command, environment and log."""
        self.stop()
        return self.start()


@dataclass
class LocustResult:
    command: list[str]
    returncode: int
    wall_s: float
    loadgen: dict
    pacing: dict
    summary: dict        # from the raw record of every request (see summarize)
    services_cpu_s: dict # CPU seconds each service (with its children) used during the Locust run;
                         # None for one restarted during it (a fault): its first life's CPU is gone


class Run:
    """One repetition of one run of a scenario: its folder, its services, its Locust run."""

    def __init__(self, directory: Path, params: dict):
        self.dir, self.params = directory, params
        self.services: list[Service] = []
        self.locust_result: Optional[LocustResult] = None
        self.notes: dict = {}

    def service(self, name: str, argv: list[str], *, ready: Callable[[], bool],
                env: Optional[dict] = None, timeout_s: float = 30.0) -> Service:
        service = Service(name, argv, log_path=self.dir / "logs" / f"{name}.log", ready=ready,
                          env=env, timeout_s=timeout_s)
        self.services.append(service)
        print(f"  starting {name}: {shlex.join(argv)}", flush=True)
        return service.start()

    def delay_proxy(self, name: str, target_port: int, rtt_ms: float) -> tuple[int, str]:
        """A delay proxy (load/delay_proxy.py) in front of ``target_port``, adding ``rtt_ms`` to
        every round trip, started as the service ``name``; returns its port and its stats URL."""
        port, stats_port = free_port(), free_port()
        stats_url = f"http://127.0.0.1:{stats_port}/stats"
        self.service(name, [sys.executable, "-m", "load.delay_proxy", "--listen", f"127.0.0.1:{port}",
                            "--target", f"127.0.0.1:{target_port}", "--rtt-ms", f"{rtt_ms:g}",
                            "--stats-port", str(stats_port)], ready=http_ready(stats_url))
        return port, stats_url

    @contextmanager
    def fault(self, target, *, kill_after_s: float, down_s: float) -> Iterator[Fault]:
        """SIGKILL ``target`` (a Service, or a load.servers Server) ``kill_after_s`` into the block and
        start it again ``down_s`` later, in a background thread; never leaves it down (see
        load/faults.py). Recorded in ``notes["faults"]`` as wall-clock times."""
        fault = Fault(target, kill_after_s, down_s)
        self.notes.setdefault("faults", []).append(fault.record)
        print(f"  fault: SIGKILL {target.name} after {kill_after_s:g} s, down for {down_s:g} s", flush=True)
        with fault:
            yield fault

    def locust(self, locustfile: Path, *, host: str, users: int, run_time_s: float,
               spawn_rate: Optional[float] = None, processes: int = 1, arrival_rate: float = 0.0,
               extra_args: tuple = (), wrapper: tuple = ()) -> LocustResult:
        """``wrapper``: a command prefix, e.g. ``("ip", "netns", "exec", NS)`` to load from a namespace."""
        raw_dir = self.dir / "raw"
        command = [*wrapper, sys.executable, "-m", "locust", "-f", shown_path(locustfile),
                   "--headless", "--host", host, "-u", str(users), "-r", str(spawn_rate or users),
                   "-t", f"{math.ceil(run_time_s)}s", "--stop-timeout", "30", "--only-summary",
                   "--csv", str(self.dir / "locust"), "--html", str(self.dir / "locust.html"),
                   "--json-file", str(self.dir / "locust_final"),
                   "--raw-dir", str(raw_dir), "--loglevel", "WARNING"]
        if arrival_rate:
            command += ["--arrival-rate", f"{arrival_rate:g}"]
        if processes > 1:
            command += ["--processes", str(processes)]
        command += list(extra_args)
        print(f"  $ {shlex.join(command)}", flush=True)
        cpu_before = {service.name: (service.process.pid, tree_cpu_seconds(service.process.pid))
                      for service in self.services}
        started = time.monotonic()
        with open(self.dir / "locust.log", "wb") as log:
            # stdin closed: Locust's key listener would stop a run started as a background job (SIGTTOU)
            process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
            try:
                cpu = _watch_cpu(process)
            finally:
                if process.poll() is None:
                    kill_tree(process)
        wall = time.monotonic() - started
        if process.returncode == 2:   # argparse's exit code: the command itself is wrong
            tail = (self.dir / "locust.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"locust refused its command line:\n{tail}")
        loadgen = {"processes": len(cpu), "cpu_seconds": round(sum(cpu.values()), 3),
                   "max_process_utilisation": round(max(cpu.values(), default=0) / wall, 3)}
        pacing = _read_process_reports(raw_dir)
        loadgen["cpu_warning"] = pacing.pop("cpu_warning")
        services_cpu = {service.name: round(tree_cpu_seconds(service.process.pid) - cpu_before[service.name][1], 3)
                        if service.process.pid == cpu_before[service.name][0] else None
                        for service in self.services if service.name in cpu_before}
        rows = read_raw(raw_dir)
        summary = summarize(rows)
        summary["by_name"] = {name: summarize([row for row in rows if row["name"] == name])
                              for name in sorted({row["name"] for row in rows})}
        self.locust_result = LocustResult(command, process.returncode, round(wall, 3), loadgen, pacing,
                                          summary, services_cpu)
        self.save_json("summary", summary)
        print(f"  locust done in {wall:.1f} s: {summary['requests']:,} requests, {summary['failures']:,} failures",
              flush=True)
        return self.locust_result

    def save_json(self, name: str, data) -> None:
        (self.dir / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")

    @contextmanager
    def sampling(self, url: str, every_s: float = 1.0, name: str = "samples") -> Iterator[None]:
        """While the block runs, GET ``url`` (a JSON object) every ``every_s`` and append each
        answer with its wall time ``t`` to ``<name>.jsonl``: a service's counters and gauges over
        the run, to divide CPU by work done in the steady part only, or memory by clients held."""
        stop = threading.Event()

        def sample() -> None:
            with open(self.dir / f"{name}.jsonl", "w") as out:
                while True:
                    started = time.time()
                    try:
                        row = {"t": started, **get_json(url, timeout=max(1.0, every_s))}
                    except (OSError, ValueError) as error:
                        row = {"t": started, "error": str(error)}
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    if stop.wait(max(0.0, every_s - (time.time() - started))):
                        return

        sampler = threading.Thread(target=sample, name=f"sampling {url}", daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join(every_s + 10)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()


def _watch_cpu(process: subprocess.Popen, workers_grace_s: float = 30.0) -> dict:
    """Wait for ``process`` and its children (Locust's ``--processes`` workers, which write their
    reports as they quit, after the master), sampling their CPU seconds once a second."""
    cpu: dict[int, float] = {}
    seen: dict[int, psutil.Process] = {}
    master_gone_at = None
    while True:
        if process.poll() is None:
            try:
                root = psutil.Process(process.pid)
                for proc in [root, *root.children(recursive=True)]:
                    seen.setdefault(proc.pid, proc)
            except psutil.NoSuchProcess:
                pass
        elif master_gone_at is None:
            master_gone_at = time.monotonic()
        running = [proc for proc in seen.values() if alive(proc)]
        for proc in running:
            try:
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        if master_gone_at is not None and (not running or time.monotonic() - master_gone_at > workers_grace_s):
            for proc in running:
                proc.kill()
            return cpu
        try:
            process.wait(1.0 if master_gone_at is None else 0.1)
        except subprocess.TimeoutExpired:
            pass


def _read_process_reports(raw_dir: Path) -> dict:
    totals = {"iterations": 0, "behind": 0, "ramping": 0, "cpu_warning": False,
              "spawned_at": None, "stopping_at": None}
    for path in raw_dir.glob("process-*.json"):
        report = json.loads(path.read_text())
        for count in ("iterations", "behind", "ramping"):
            totals[count] += report.get(count, 0)
        # the load is whole once the last process has spawned its users, and ends with the first to stop
        if report.get("spawned_at"):
            totals["spawned_at"] = max(totals["spawned_at"] or 0, report["spawned_at"])
        if report.get("stopping_at"):
            totals["stopping_at"] = min(totals["stopping_at"] or math.inf, report["stopping_at"])
        totals["cpu_warning"] |= report["cpu_warning"]
    return totals


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (shorter commands to read and rerun)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def summarize(rows: list[dict], warmup_s: float = 1.0) -> dict:
    """Counts, latency percentiles (successful requests) and the steady completion rate.

    The rate counts completions after the first ``warmup_s`` of the run, so spawning users
    does not dilute it."""
    times = sorted(row["response_time_ms"] for row in rows if row["ok"])
    finished = sorted(row["start_time"] + row["response_time_ms"] / 1000 for row in rows if row["ok"])
    steady = [t for t in finished if finished and t >= finished[0] + warmup_s]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 and steady[-1] > steady[0] else 0.0
    rounded = lambda value: None if value is None else round(value, 2)
    return {"requests": len(rows), "failures": sum(not row["ok"] for row in rows),
            "median_ms": rounded(percentile(times, 0.5)), "p95_ms": rounded(percentile(times, 0.95)),
            "p99_ms": rounded(percentile(times, 0.99)), "throughput_per_s": round(rate, 3)}


def git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine() -> dict:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "hostname": platform.node()}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def validity(result: Optional[LocustResult], expected: Optional[dict] = None) -> list[str]:
    """Why a run's numbers cannot be trusted; empty when they can.

    ``expected`` is what the run declared on purpose (``{"overload": "why"}``: a load meant to be
    more than the system takes, so arrivals falling behind their pace is the finding, not a
    saturated load generator). A full load-generator core is never expected."""
    if result is None:
        return ["no Locust run"]
    reasons = []
    if not result.summary["requests"]:
        reasons.append("Locust made no request: see locust.log")
    iterations, behind = result.pacing["iterations"], result.pacing["behind"]
    # one late arrival is chance, not a saturated load generator, however short the run
    if (iterations and behind / iterations > MAX_BEHIND_FRACTION and behind > 1
            and not (expected or {}).get("overload")):
        reasons.append(f"{behind} of {iterations} iterations fell behind their pace: add users")
    if result.loadgen["cpu_warning"] or result.loadgen["max_process_utilisation"] > MAX_CORE_UTILISATION:
        reasons.append("a load generator process had a full core: add Locust processes")
    return reasons


def faults_missed(notes: dict) -> list[str]:
    """A planned SIGKILL that never happened (the run ended first, say behind a slow restart of
    the fault before it): the run did not measure what it was for."""
    return [f"the planned SIGKILL of {fault['target']} {fault['kill_after_s']:g} s in never happened: "
            f"the run ended first" for fault in notes.get("faults", []) if not fault.get("killed_at")]


EXPECTATIONS = ("failures", "overload")


@dataclass
class Scenario:
    """One of a chapter's scenarios, in two parts so that a command knows every run before the first
    starts (and can say "run 3 of 18, about 2 minutes left"):

    - ``plan(size)``: the runs at that size, ``{run name: params}``; its docstring documents the
      scenario (``python -m load list`` prints its first line). The params are recorded in each
      run's meta.json, so they hold everything the run and its figures need.
    - ``perform(run)``: one run, from ``run.params`` alone: start the services, drive Locust, save
      what the services counted.
    - ``headline(run)``: the one line that says what this run measured (delivery latency, not the
      mix of every request), printed when it ends.
    - ``needs``: servers (``redis``, ``rabbitmq``, ``postgres``) or ``root`` the scenario cannot run
      without; missing, it is skipped with the install hint (``REQUIRE_SERVERS=1``: it fails).

    A run that fails requests or overloads the system on purpose declares it in its params:
    ``expect={"failures": "why", "overload": "why"}`` (see ``validity`` and load/contract.py).
    """
    plan: Callable[[str], dict]
    perform: Callable[["Run"], None]
    headline: Optional[Callable[["Run"], str]] = None
    needs: tuple = ()

    @property
    def doc(self) -> str:
        return (self.plan.__doc__ or "").strip()

    def missing(self) -> list[str]:
        """What this scenario needs and the machine lacks, each saying how to get it."""
        from load import servers
        found = []
        for need in self.needs:
            if need == "root":
                if os.geteuid() != 0:
                    found.append("root (network namespaces): run it as root, e.g. `sudo make bench`")
            elif need in servers.SERVERS:
                found += filter(None, [servers.missing(need)])
            elif not shutil.which(need, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])):
                found.append(f"{need} not found: install it (Debian: `apt-get install {need}`)")
        return found


def headline_for(run: "Run", request_name: str, what: str) -> str:
    """"<what> median 3.6 ms, p99 5.9 ms over 12,345": one request name's latency in a run."""
    summary = (run.locust_result.summary["by_name"].get(request_name) if run.locust_result else None) or {}
    if not summary.get("requests"):
        return f"no '{request_name}' recorded"
    return (f"{what} median {summary['median_ms']} ms, p99 {summary['p99_ms']} ms over "
            f"{summary['requests'] - summary['failures']:,}")


@dataclass
class Harness:
    """Runs a chapter's scenarios at one size; a scenario calls ``harness.run(...)`` per run."""
    chapter: str
    size: str = "default"
    repetition: int = 1
    results_root: Path = field(default_factory=lambda: ROOT / "results")
    scenario: str = ""

    @contextmanager
    def run(self, name: str, expect: Optional[dict] = None, **params) -> Iterator[Run]:
        """A run's folder and its services, stopped when the block ends; meta.json written then.
        ``expect``: failures or overload the run causes on purpose (recorded, see ``validity``)."""
        expect = dict(expect or {})
        if unknown := set(expect) - set(EXPECTATIONS):
            raise ValueError(f"expect takes {', '.join(EXPECTATIONS)}, not {', '.join(sorted(unknown))}")
        directory = self.results_root / self.chapter / self.scenario / name / f"rep-{self.repetition}"
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        print(f"[{self.chapter} / {self.scenario} / {name} / rep {self.repetition}] {params}", flush=True)
        run = Run(directory, params)
        started = datetime.now(timezone.utc)
        try:
            yield run
        finally:
            run.stop()
            ended = datetime.now(timezone.utc)
            reasons = validity(run.locust_result, expect) + faults_missed(run.notes)
            meta = {
                "chapter": self.chapter, "scenario": self.scenario, "run": name,
                "repetition": self.repetition, "size": self.size, "params": params, "expected": expect,
                "started_at": started.isoformat(), "ended_at": ended.isoformat(),
                "git": git_commit(), "machine": machine(), "versions": versions(),
                "notes": run.notes, "valid": not reasons, "invalid_reasons": reasons,
            }
            if run.locust_result is not None:
                result = run.locust_result
                meta.update(command=result.command, locust_returncode=result.returncode,
                            locust_wall_s=result.wall_s, loadgen=result.loadgen, pacing=result.pacing,
                            services_cpu_s=result.services_cpu_s)
            run.save_json("meta", meta)
            if reasons:
                print(f"  INVALID run: {'; '.join(reasons)}", flush=True)
