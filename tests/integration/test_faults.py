"""Faults on purpose: the harness SIGKILLs a service (or a real server) mid-run and brings it back on
the same port and data, records when, and never leaves it down; ``python -m load.faults`` does the
same by hand."""
import json
import subprocess
import sys
import time

import psutil
import pytest

from demos.realtime_delivery.clients import Http
from load.harness import ROOT, Harness, Service, http_ready, wait_for
from load.processes import free_port, gone, port_answers
from load.realtime_delivery import scenarios as realtime
from load.results import read_raw


def web_server(run_or_folder, name: str = "web") -> Service:
    """A tiny service: Python's http.server on a fixed free port (it says so in its log when it starts)."""
    port = free_port()
    argv = [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    return Service(name, argv, log_path=run_or_folder / f"{name}.log", ready=http_ready(f"http://127.0.0.1:{port}/"))


def test_a_fault_kills_the_service_during_the_load_and_brings_it_back_with_its_data(tmp_path):
    harness = Harness("01-realtime-delivery", "smoke", 1, tmp_path, "faults")
    with harness.run("kill-restart") as run:
        server = realtime.start_server(run)
        service = run.services[0]
        Http(server.url).create("before")
        kept = Http(server.url).send("before", "ann", "sent before the kill")
        first_pid = service.process.pid
        with run.fault(service, kill_after_s=2, down_s=1.5):
            realtime.drive(run, server, "long-poll", receivers=5, conversations=1, rate=5, seconds=6)
        assert gone(first_pid) and service.process.pid != first_pid
        assert Http(server.url).short_poll("before", after=0)["messages"][0]["seq"] == kept   # same data
    meta = json.loads((run.dir / "meta.json").read_text())
    assert meta["services_cpu_s"]["im-server"] is None        # restarted: its CPU over the run is unknown
    fault, = meta["notes"]["faults"]
    assert fault["target"] == "im-server" and "error" not in fault
    assert fault["killed_at"] < fault["restarted_at"] < fault["ready_at"]
    assert 1.4 < fault["restarted_at"] - fault["killed_at"] < 3
    rows = read_raw(run.dir / "raw")
    assert min(row["start_time"] for row in rows) < fault["killed_at"]      # in the middle of the load
    assert any(not row["ok"] for row in rows)                               # the load saw the outage
    delivered_after = [row for row in rows if row["name"] == "deliver long-poll"
                       and row["start_time"] > fault["ready_at"]]
    assert delivered_after, "no message delivered after the restart"
    log = (run.dir / "logs" / "im-server.log").read_text()
    assert log.count("serving HTTP on") == 2                                # one log, appended


def test_a_fault_never_leaves_the_service_down_even_when_the_block_raises(tmp_path):
    harness = Harness("01-realtime-delivery", "smoke", 1, tmp_path, "faults")
    with harness.run("raises") as run:
        web = web_server(run.dir).start()
        run.services.append(web)
        first_pid = web.process.pid
        with pytest.raises(RuntimeError, match="the scenario failed"):
            with run.fault(web, kill_after_s=0, down_s=60) as fault:
                wait_for(lambda: fault.record["killed_at"], 5, "the kill")
                raise RuntimeError("the scenario failed")
        assert fault.record["ready_at"] - fault.record["killed_at"] < 10   # the 60 s outage was cut short
        assert web.ready() and gone(first_pid)

        with run.fault(web, kill_after_s=30, down_s=1) as early:
            pass                                                           # ended before the kill
        assert early.record["killed_at"] is None and web.ready()

        pid = web.process.pid
        web.restart()                                                      # same argv, env and log
        assert gone(pid) and web.ready()
        assert (run.dir / "web.log").read_text().count("Serving HTTP on") == 3
    faults = json.loads((run.dir / "meta.json").read_text())["notes"]["faults"]
    assert [fault["killed_at"] is None for fault in faults] == [False, True]


@pytest.mark.servers
def test_a_fault_on_a_real_server_keeps_what_redis_wrote_with_appendonly(start_server, tmp_path):
    import redis

    harness = Harness("04-message-queues", "smoke", 1, tmp_path, "faults")
    with start_server("redis", appendonly=True) as server, harness.run("redis") as run:
        redis.Redis.from_url(server.url).set("kept", "yes")
        first_pid = server.pid
        with run.fault(server, kill_after_s=0.2, down_s=0.5) as fault:
            wait_for(lambda: fault.record["ready_at"], 30, "Redis back")
        assert server.pid != first_pid and gone(first_pid)
        assert redis.Redis.from_url(server.url).get("kept") == b"yes"


def listener(port: int) -> psutil.Process:
    pid, = {c.pid for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    return psutil.Process(pid)


def test_the_kill_restart_command_brings_a_real_service_back_on_its_port_with_its_data(tmp_path):
    port, ws_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    service = Service("im-server", [sys.executable, "-m", "demos.realtime_delivery.server", "--port", str(port),
                                    "--ws-port", str(ws_port)], log_path=tmp_path / "server.log",
                      ready=http_ready(f"{url}/health"), env={"DATA_DIR": str(tmp_path / "data"), "BROKER_URL": ""})
    service.start()
    restarted = None
    try:
        Http(url).create("general")
        seq = Http(url).send("general", "ann", "kept")
        before = listener(port)
        command = [sys.executable, "-m", "load.faults", "kill-restart", "--port", str(port), "--down", "1",
                   "--log", str(tmp_path / "restarted.log")]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert time.monotonic() - started >= 1
        assert f"found pid {before.pid} listening on 127.0.0.1:{port}" in done.stdout
        assert f"SIGKILL to process group {before.pid}" in done.stdout
        assert f"port {port} answers again" in done.stdout and "ready_at" in done.stdout
        assert gone(before.pid) and port_answers(port)
        restarted = listener(port)
        assert restarted.pid != before.pid and restarted.cmdline() == service.argv
        assert restarted.environ()["DATA_DIR"] == str(tmp_path / "data")
        assert Http(url).short_poll("general", after=0)["messages"][0]["seq"] == seq     # same data
    finally:
        service.stop()
        if restarted is not None:
            restarted.kill()                        # it leads its own session: stop it and its group
            psutil.wait_procs([restarted], timeout=10)
    assert not port_answers(port)


def test_the_kill_restart_command_says_what_it_does():
    done = subprocess.run([sys.executable, "-m", "load.faults", "kill-restart", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "SIGKILL its process group" in text and "start the same command again" in text
    assert "--port" in text and "--down" in text
