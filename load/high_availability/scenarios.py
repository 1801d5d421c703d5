"""Chapter 6's benchmark scenarios: what the harness runs for ``python -m load run 06-high-availability``.

- ``backend-death`` (closed loop, paced): nginx balancing three backends on loopback (no root, no
  virtual IP needed); one backend is SIGKILLed with requests in flight and restarted. Failed
  requests with ``proxy_next_upstream`` at its default (GETs retried), off (the control), and for
  POSTs with and without ``non_idempotent``; the share of requests each backend served over time.
- ``failover`` (closed loop, paced, and the 20 ms probe): the real topology in network namespaces,
  two nginx + keepalived balancers sharing a virtual IP; the master's nginx killed, its keepalived
  SIGKILLed or stopped, its link cut, the master returning (preempt vs nopreempt), with the
  article's settings and faster ones; the gap in steps, failed requests, who held the address.
"""
import sys
import time
from pathlib import Path

from demos.high_availability import cluster, configs
from demos.high_availability.topology import VIP, Topology
from load.harness import Run, Scenario, log_ready
from load.processes import free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
FAULT_AT_S = 3.0            # seconds into the load before the fault: Locust is steady by then
TAIL_S = 2.0                # seconds of load after the bound, to see the service back

BACKEND_VARIANTS = {
    # name: (method, nginx options, why it fails)
    "get-retry": ("get", dict(next_upstream=True), None),
    "get-no-retry": ("get", dict(next_upstream=False),
                     "proxy_next_upstream off: requests in flight on the killed backend fail"),
    "post-default": ("post", dict(next_upstream=True),
                     "a POST already sent is not retried unless non_idempotent is set"),
    "post-non-idempotent": ("post", dict(next_upstream=True, non_idempotent=True), None),
    "get-least-conn": ("get", dict(next_upstream=True, policy="least_conn"), None),   # the other policy
}

FAULTS = ("nginx-kill", "keepalived-sigkill", "keepalived-stop", "link-cut", "master-return")

# One shape for every chapter: SIZES[size][scenario] holds what that scenario's plan needs.
SIZES = {
    "smoke": dict(
        **{"backend-death": dict(variants=("get-retry",), seconds=7, kill_at_s=2, down_s=2)},
        failover=dict(runs=(("nginx-kill", "vrrp3-fast", "priority", True),))),
    "default": dict(
        **{"backend-death": dict(variants=("get-retry", "get-no-retry"), seconds=14, kill_at_s=3, down_s=4)},
        failover=dict(runs=tuple((fault, setting, "priority", True) for fault in ("nginx-kill", "keepalived-sigkill")
                                 for setting in ("article", "vrrp3-fast")))),
    "workshop": dict(
        **{"backend-death": dict(variants=tuple(BACKEND_VARIANTS), seconds=20, kill_at_s=3, down_s=6)},
        failover=dict(runs=(
            *((fault, setting, "priority", True) for fault in FAULTS[:4] for setting in configs.SETTINGS),
            ("master-return", "one-second", "priority", True),     # the master takes the address back
            ("master-return", "one-second", "fault", False),       # nopreempt (FAULT style, so it moves): it does not
            ("nginx-kill", "one-second", "fault", True),           # the check's other style: FAULT state
            ("nginx-kill", "one-second", "priority", False),       # nopreempt + priority: the address stays
            ("nginx-kill", "one-second", "fault", False)))),       # nopreempt + FAULT: it still moves
}


# --- backend-death --------------------------------------------------------------------------

def backend_plan(size: str) -> dict:
    """Closed loop, paced (30 users, 4 requests a second each, answers held 200 ms, so about 24
    are in flight): nginx on loopback balancing three backends, one SIGKILLed and restarted. Needs
    nginx, not root."""
    plan = SIZES[size]["backend-death"]
    runs = {}
    for variant in plan["variants"]:
        method, nginx, why = BACKEND_VARIANTS[variant]
        runs[variant] = dict(variant=variant, method=method, nginx=nginx, users=30, user_rate=4, delay_ms=200,
                             backends=3, fail_timeout_s=3, seconds=plan["seconds"], kill_at_s=plan["kill_at_s"],
                             down_s=plan["down_s"], loop="closed",
                             **({"expect": {"failures": why}} if why else {}))
    return runs


def backend_death(run: Run) -> None:
    p = run.params
    folder = run.dir / "ha"
    addresses = cluster.backend_addresses(None, p["backends"])
    backends = cluster.start_backends(run.service, None, addresses)
    port = free_port()
    cluster.start_nginx(run.service, folder, cluster.BALANCERS[0], None, addresses, listen_port=port,
                        fail_timeout_s=p["fail_timeout_s"], **p["nginx"])
    url = f"http://127.0.0.1:{port}"
    start_probe(run, [], f"{url}/")
    with run.fault(backends[0], kill_after_s=p["kill_at_s"], down_s=p["down_s"]):
        run.locust(LOCUSTFILE, host=url, users=p["users"], run_time_s=p["seconds"],
                   extra_args=("--user-rate", str(p["user_rate"]), "--method", p["method"],
                               "--delay-ms", str(p["delay_ms"])))


def backend_headline(run: Run) -> str:
    summary = run.locust_result.summary if run.locust_result else {}
    from load.high_availability import analysis
    retried = analysis.retried({"dir": run.dir})
    return (f"{summary.get('failures', 0):,} of {summary.get('requests', 0):,} requests failed with a backend "
            f"SIGKILLed; nginx retried {retried:,} on another backend")


# --- failover -------------------------------------------------------------------------------

def failover_plan(size: str) -> dict:
    """Closed loop, paced (5 users, 10 requests a second each) plus the 20 ms probe, through the
    virtual IP: two nginx + keepalived balancers in network namespaces, a fault on the master
    (lb1), the gap until the backup (lb2) serves, in steps. Needs root, nginx and keepalived."""
    runs = {}
    for fault, setting_name, style, preempt in SIZES[size]["failover"]["runs"]:
        setting = configs.SETTINGS[setting_name]
        name = "-".join([fault, setting_name, *([] if style == "priority" else [f"{style}-style"]),
                         *([] if preempt else ["nopreempt"])])
        moves = preempt or style == "fault"          # nopreempt + a lowered priority: the address stays
        down_s = setting.bound_s + 2 if fault == "master-return" else 600
        seconds = FAULT_AT_S + setting.bound_s + TAIL_S + (down_s + setting.master_down_s + setting.rise *
                                                           setting.check_interval if fault == "master-return" else 0)
        refused = fault in ("nginx-kill", "master-return") or (fault == "link-cut" and setting.master_down_s >= 2)
        runs[name] = dict(fault=fault, setting=setting_name, style=style, preempt=preempt, moves=moves,
                          advert_int=setting.advert_int, check_interval=setting.check_interval,
                          fall=setting.fall, rise=setting.rise, vrrp_version=setting.vrrp_version,
                          bound_s=setting.bound_s, fault_at_s=FAULT_AT_S, down_s=down_s,
                          seconds=round(seconds, 1), users=5, user_rate=10, backends=2, loop="closed",
                          **({"expect": {"failures": WHY[fault]}} if refused else {}))
    return runs


WHY = {"nginx-kill": "lb1 holds the address with its nginx dead until the check fails: connections refused",
       "master-return": "lb1 holds the address with its nginx dead until the check fails: connections refused",
       "link-cut": "requests sent to the cut link time out until the backup takes the address"}


class Action:
    """A fault that is not a SIGKILL, in the shape ``run.fault`` drives: ``kill()`` then ``start()``."""

    def __init__(self, name: str, kill, start):
        self.name, self.kill, self.start = name, kill, start


def failover(run: Run) -> None:
    p = run.params
    setting = configs.SETTINGS[p["setting"]].variant(check_style=p["style"], preempt=p["preempt"])
    if problems := cluster.missing():
        raise RuntimeError("; ".join(problems))
    net = Topology()
    run.notes.update(namespaces=net.prefix, vip=VIP, setting=setting.__dict__)
    try:
        net.create()
        folder = run.dir / "ha"
        addresses = cluster.backend_addresses(net, p["backends"])
        cluster.start_backends(run.service, net, addresses)
        nginx = {name: cluster.start_nginx(run.service, folder, name, net, addresses) for name in cluster.BALANCERS}
        keepalived = {name: cluster.start_keepalived(run.service, folder, name, net, setting, master=k == 0)
                      for k, name in enumerate(cluster.BALANCERS)}
        # lb1 starts first: with nopreempt both start BACKUP and the first to time out is master
        run.notes["master_ready_s"] = round(cluster.wait_for_holder(net, "lb1", 4 * setting.master_down_s + 15), 3)
        run.service("holders", [sys.executable, "-m", "demos.high_availability.holders", "--vip", VIP,
                                "--out", str(run.dir / "holders.csv"),
                                *[f"--node={name}={net.ns(name)}" for name in cluster.BALANCERS]],
                    ready=log_ready(run.dir / "logs" / "holders.log", "holders: sampling"))
        start_probe(run, net.exec_argv("client", []), f"http://{VIP}/")
        target = {"nginx-kill": nginx["lb1"], "master-return": nginx["lb1"], "keepalived-sigkill": keepalived["lb1"],
                  "keepalived-stop": Action("keepalived-lb1 (SIGTERM, a clean stop)", keepalived["lb1"].stop,
                                            keepalived["lb1"].start),
                  "link-cut": Action("lb1's link (cut at the switch)", lambda: net.cut("lb1"),
                                     lambda: net.mend("lb1"))}[p["fault"]]
        with run.fault(target, kill_after_s=p["fault_at_s"], down_s=p["down_s"]) as fault:
            fault.record["kind"] = p["fault"]
            run.locust(LOCUSTFILE, host=f"http://{VIP}", users=p["users"], run_time_s=p["seconds"],
                       extra_args=("--user-rate", str(p["user_rate"])), wrapper=tuple(net.exec_argv("client", [])))
        run.notes["holders_at_end"] = [name for name in cluster.BALANCERS if net.holds_vip(name)]
    finally:
        run.stop()          # every process first (keepalived releases the address), then the namespaces
        net.remove()


def start_probe(run: Run, wrapper: list[str], url: str) -> None:
    run.service("probe", [*wrapper, sys.executable, "-m", "demos.high_availability.probe", "--url", url,
                          "--out", str(run.dir / "probe.csv")],
                ready=log_ready(run.dir / "logs" / "probe.log", "probe: first answer"))


def failover_headline(run: Run) -> str:
    from load.high_availability import analysis
    try:
        steps = analysis.failover_steps({"dir": run.dir, "params": run.params, "notes": run.notes})
    except (ValueError, OSError) as problem:
        return f"no gap measured: {problem}"
    fmt = lambda value: "-" if value != value else f"{value:.2f}"
    summary = run.locust_result.summary if run.locust_result else {}
    return (f"fault to the backup serving {fmt(steps['total_s'])} s (detection {fmt(steps['detection_s'])}, "
            f"new master {fmt(steps['election_s'])}, first served {fmt(steps['serve_s'])}; bound {run.params['bound_s']:g} s); "
            f"probe: {steps['failed']} failed, {steps['outage_s']:.2f} s without service; "
            f"Locust: {summary.get('failures', 0)} of {summary.get('requests', 0)} failed; "
            f"two holders for {steps['two_holders_s']:.1f} s"
            + (f"; lb1 master again {fmt(steps['return_s'])} s after its nginx was back, "
               f"{steps['return_failed']} probe requests failed meanwhile" if run.params["fault"] == "master-return" else ""))


SCENARIOS = {
    "backend-death": Scenario(backend_plan, backend_death, backend_headline, needs=("nginx",)),
    "failover": Scenario(failover_plan, failover, failover_headline, needs=("root", "nginx", "keepalived")),
}
