"""Chapter 6's guarantee for a balancer's death, with the real nginx and keepalived in network
namespaces: the virtual IP moves to the backup, which serves within 3 adverts + fall x check
interval + 1 s for each setting tested; a SIGKILLed keepalived leaves the address behind on the
old master; and afterwards the namespaces and every process are gone, also after a failure.
Needs root, nginx, keepalived and iproute2."""
import os
import time

import pytest

from demos.high_availability import cluster, configs, topology
from demos.high_availability.topology import VIP, Topology
from load.processes import gone


@pytest.fixture
def net(tmp_path):
    if problems := cluster.missing():
        (pytest.fail if os.environ.get("REQUIRE_SERVERS") == "1" else pytest.skip)("; ".join(problems))
    services = cluster.Services(tmp_path)
    with Topology() as net:
        net.services = services
        try:
            yield net
        finally:
            services.stop()
    assert topology.leftovers(net.prefix) == []


def balancers(net, tmp_path, setting):
    start = net.services.start
    addresses = cluster.backend_addresses(net, 2)
    cluster.start_backends(start, net, addresses)
    nginx = [cluster.start_nginx(start, tmp_path, name, net, addresses) for name in cluster.BALANCERS]
    keepalived = [cluster.start_keepalived(start, tmp_path, name, net, setting, master=k == 0)
                  for k, name in enumerate(cluster.BALANCERS)]
    cluster.wait_for_holder(net, "lb1", 4 * setting.master_down_s + 15)
    return nginx, keepalived


def served_by(net) -> str:
    try:
        status, headers, _ = net.http("client", VIP, 80, "/", timeout_s=0.3)
        return headers.get("X-Balancer", "") if status == 200 else ""
    except OSError:
        return ""


def until_the_backup_serves(net, limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s + 5:
        if served_by(net) == "lb2":
            return time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(f"the backup did not serve {VIP} within {limit_s + 5:g} s")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("setting", ["vrrp3-fast", "one-second", "article"])
def test_the_backup_serves_within_the_bound_when_the_masters_nginx_dies(net, tmp_path, setting):
    setting = configs.SETTINGS[setting]
    nginx, _ = balancers(net, tmp_path, setting)
    assert served_by(net) == "lb1"
    nginx[0].kill()
    took = until_the_backup_serves(net, setting.bound_s)
    assert took <= setting.bound_s, f"{took:.2f} s > {setting.bound_s:g} s"
    assert net.holds_vip("lb2") and not net.holds_vip("lb1")


@pytest.mark.timeout(60)
def test_a_sigkilled_keepalived_leaves_the_address_behind(net, tmp_path):
    setting = configs.SETTINGS["vrrp3-fast"]
    _, keepalived = balancers(net, tmp_path, setting)
    keepalived[0].kill()
    took = until_the_backup_serves(net, setting.bound_s)
    assert took <= setting.master_down_s + 1.0, f"{took:.2f} s"
    assert net.holds_vip("lb2") and net.holds_vip("lb1")      # two holders: nobody removed it from lb1


@pytest.mark.timeout(60)
def test_a_stopped_keepalived_releases_the_address(net, tmp_path):
    setting = configs.SETTINGS["vrrp3-fast"]
    _, keepalived = balancers(net, tmp_path, setting)
    keepalived[0].stop()
    assert until_the_backup_serves(net, 1.0) <= 1.0
    assert net.holds_vip("lb2") and not net.holds_vip("lb1")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_namespaces_and_processes_are_gone_afterwards_also_after_a_failure(tmp_path, failure):
    if problems := cluster.missing():
        (pytest.fail if os.environ.get("REQUIRE_SERVERS") == "1" else pytest.skip)("; ".join(problems))
    services = cluster.Services(tmp_path)
    try:
        with pytest.raises(failure, match="on purpose"):
            with Topology() as net:
                net.services = services
                prefix = net.prefix
                assert sorted(topology.leftovers(prefix)) == sorted(net.ns(role) for role in topology.ROLES)
                balancers(net, tmp_path, configs.SETTINGS["vrrp3-fast"])
                pids = [service.process.pid for service in services.started]
                raise failure("a failure on purpose (or Ctrl-C), with everything running")
        assert topology.leftovers(prefix) == []
        assert len(pids) == 6 and all(gone(pid) for pid in pids), "a process outlived its namespace"
    finally:
        services.stop()
