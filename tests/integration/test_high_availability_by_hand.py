"""Chapter 6 by hand: ``python -m demos.high_availability.cluster`` without root says exactly what is
missing and how to get it, runs the part that works (nginx balancing local backends on loopback),
and Ctrl-C stops every process it started. Needs nginx."""
import os
import re
import signal
import sys
import urllib.request

import psutil
import pytest

from demos.high_availability import cluster
from load.harness import wait_for
from load.processes import descendants, free_port, gone, spawn

NOT_ROOT = ("import os, sys; os.geteuid = lambda: 1000; "          # as an ordinary user would run it
            "from demos.high_availability import cluster; cluster.main(sys.argv[1:])")


@pytest.fixture
def needs_nginx():
    if problems := cluster.missing(vip=False):
        (pytest.fail if os.environ.get("REQUIRE_SERVERS") == "1" else pytest.skip)("; ".join(problems))


@pytest.mark.timeout(60)
def test_without_root_it_says_what_is_missing_and_balances_on_loopback(needs_nginx, tmp_path):
    port, log = free_port(), tmp_path / "cluster.log"
    process = spawn([sys.executable, "-c", NOT_ROOT, "--port", str(port), "--folder", str(tmp_path / "run")], log)
    try:
        wait_for(lambda: "nginx balances" in log.read_text(), 30, f"the loopback demo (see {log})")
        said = log.read_text()
        assert "root (network namespaces): run it as root, e.g. `sudo make bench`" in said
        assert "running the part that works without them: nginx balancing local backends on loopback" in said
        served = set()
        for _ in range(6):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                assert answer.headers["X-Balancer"] == "lb1"
                served.add(re.search(r'"backend":"([^"]+)"', answer.read().decode())[1])
        assert served == {"backend-1", "backend-2", "backend-3"}        # round robin over the three
        children = descendants(process.pid)
        assert len(children) >= 4                                       # 3 backends and nginx (and its worker)
        os.kill(process.pid, signal.SIGINT)                             # Ctrl-C, to the demo alone
        assert process.wait(20) == 0
        psutil.wait_procs(children, timeout=10)
        assert all(gone(child.pid) for child in children), "Ctrl-C left a process running"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
