"""Chapter 6 on a machine without root, nginx or keepalived: each scenario says exactly what is
missing and how to get it (the harness skips it with that hint; REQUIRE_SERVERS=1 fails it), and
backend-death needs nothing but nginx."""
import shutil

from demos.high_availability import cluster, topology
from load.high_availability.scenarios import SCENARIOS


def test_without_root_the_failover_says_so_and_backend_death_still_runs(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert SCENARIOS["failover"].missing() == ["root (network namespaces): run it as root, e.g. `sudo make bench`"]
    assert SCENARIOS["backend-death"].missing() == []
    assert topology.missing() == ["root (network namespaces): run it as root, e.g. `sudo make bench`"]


def test_without_the_programs_each_gets_its_install_hint(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    assert SCENARIOS["failover"].missing()[-2:] == [
        "nginx not found: install it (Debian: `apt-get install nginx`)",
        "keepalived not found: install it (Debian: `apt-get install keepalived`)"]
    assert SCENARIOS["backend-death"].missing() == ["nginx not found: install it (Debian: `apt-get install nginx`)"]
    assert cluster.missing(vip=False) == ["nginx not found: install it (Debian: `apt-get install nginx`)"]
    assert "ip not found: install it (Debian: `apt-get install iproute2`)" in cluster.missing()
