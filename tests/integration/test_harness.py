"""The harness leaves no process or port behind, and a real Locust run agrees with the service."""
import json
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from load.harness import ROOT, Harness, ServiceFailed, git_commit
from load.message_queues import scenarios
from load.processes import gone
from load.servers import port_is_free


def processes_with_data_dir(folder) -> list[psutil.Process]:
    """Processes whose DATA_DIR lies under ``folder``: the services a harness run started."""
    found = []
    for proc in psutil.process_iter():
        try:
            if str(folder) in proc.environ().get("DATA_DIR", ""):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_short_locust_run_counts_what_the_service_counts(tmp_path):
    harness = Harness("04-message-queues", "smoke", 1, tmp_path, "check")
    with harness.run("queued", variant="queued") as run:
        url = scenarios.start_registration(run, "queued", threads=2)
        result = run.locust(scenarios.LOCUSTFILE, host=url, users=4, run_time_s=2)
        scenarios.save_service_report(run, url)
        pids = [service.process.pid for service in run.services]
        port = int(url.rsplit(":", 1)[1])
    service = json.loads((run.dir / "service.json").read_text())
    final = json.loads((run.dir / "locust_final.json").read_text())   # Locust's own final stats
    assert result.summary["requests"] > 20 and result.summary["failures"] == 0
    assert result.summary["requests"] == sum(entry["num_requests"] for entry in final)
    assert result.summary["requests"] == service["register_requests"] == service["statuses"]["201"]
    meta = json.loads((run.dir / "meta.json").read_text())
    assert meta["git"]["commit"] == git_commit()["commit"] and len(meta["git"]["commit"]) == 40
    assert meta["params"] == {"variant": "queued"} and meta["loadgen"]["cpu_seconds"] > 0
    assert meta["valid"], meta["invalid_reasons"]
    assert all(gone(pid) for pid in pids) and port_is_free(port)


def test_a_service_that_fails_to_start_is_reported_and_nothing_is_left(tmp_path):
    harness = Harness("04-message-queues", "smoke", 1, tmp_path, "check")
    port_holder = socket.socket()
    port_holder.bind(("127.0.0.1", 0))
    port_holder.listen()
    taken = port_holder.getsockname()[1]
    with pytest.raises(ServiceFailed, match="exited with code"):
        with harness.run("broken") as run:
            worker = run.service("worker", [sys.executable, "-m", "demos.message_queues.worker"],
                                 env={"DATA_DIR": str(tmp_path / "data")},
                                 ready=lambda: "worker ready" in (run.dir / "logs" / "worker.log").read_text())
            # the port is taken: the service dies at start; the worker started before it must stop too
            run.service("serial", [sys.executable, "-m", "demos.message_queues.serial", "--port", str(taken)],
                        env={"DATA_DIR": str(tmp_path / "data")}, ready=lambda: False)
    port_holder.close()
    assert gone(worker.process.pid)
    assert processes_with_data_dir(tmp_path) == []


def test_a_service_that_never_gets_ready_is_stopped_with_its_children(tmp_path):
    harness = Harness("04-message-queues", "smoke", 1, tmp_path, "check")
    with pytest.raises(ServiceFailed, match="not ready after 1 s"):
        with harness.run("hung") as run:
            run.service("hung", ["bash", "-c", f"sleep 300 & echo $! > {tmp_path}/child.pid; sleep 300"],
                        env={"DATA_DIR": str(tmp_path)}, ready=lambda: False, timeout_s=1)
    child = int((tmp_path / "child.pid").read_text())
    assert gone(run.services[0].process.pid) and gone(child)


def test_ctrl_c_during_a_run_stops_every_service(tmp_path):
    """Even when the harness starts with SIGINT ignored, as a background job of a non-interactive
    shell (`make bench &`, CI) starts it: Python then installs no Ctrl-C handler of its own."""
    command = [sys.executable, "-m", "load", "run", "04-message-queues", "--scenario", "latency",
               "--size", "smoke", "--results", str(tmp_path)]
    harness = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    output = []
    for line in harness.stdout:            # wait until Locust is running against the first variant
        output.append(line)
        if "$ " in line and "locust" in line:
            break
    deadline = time.monotonic() + 10
    while not processes_with_data_dir(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_data_dir(tmp_path), "".join(output)
    harness.send_signal(signal.SIGINT)
    output.append(harness.communicate(timeout=60)[0])
    assert harness.returncode != 0
    assert "interrupted" in "".join(output)
    assert processes_with_data_dir(tmp_path) == []
    assert (next(tmp_path.glob("04-message-queues/latency/*/rep-1/meta.json"))).exists()


def test_a_run_over_two_locust_processes_reads_both_workers_and_samples_the_service(tmp_path):
    """Locust's --processes workers write their reports after the master exits; the harness must
    wait for them (it once read the pacing report before the publisher's worker had written it)."""
    from load.realtime_delivery import scenarios as realtime

    harness = Harness("01-realtime-delivery", "smoke", 1, tmp_path, "check")
    with harness.run("two-processes") as run:
        server = realtime.start_server(run)
        realtime.drive(run, server, "long-poll", receivers=20, conversations=2, rate=10, seconds=3, processes=2)
    result = run.locust_result
    reports = sorted((run.dir / "raw").glob("process-*.json"))
    assert len(reports) == 3                                      # the master and both workers
    assert result.loadgen["processes"] == 3
    assert result.pacing["iterations"] >= 20, result.pacing       # the publisher's worker was read
    delivered = result.summary["by_name"]["deliver long-poll"]["requests"]
    assert delivered > 100 and result.summary["failures"] == 0
    samples = [json.loads(line) for line in (run.dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) >= 3 and all("error" not in row for row in samples)
    assert samples[-1]["process.cpu_s"] > samples[0]["process.cpu_s"]
    assert samples[-1]["deliveries.long_poll"] > samples[0].get("deliveries.long_poll", 0)
    start, end = json.loads((run.dir / "meta.json").read_text())["notes"]["steady_window"]
    assert samples[0]["t"] < start < end <= samples[-1]["t"] + 1
