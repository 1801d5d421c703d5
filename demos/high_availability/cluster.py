"""The chapter's whole setup, one function per part, for the harness's scenarios and for a reader.

    python -m demos.high_availability.cluster            # as root: namespaces, 3 backends, 2 nginx,
                                                         # 2 keepalived and the virtual IP; prints what
                                                         # to try; Ctrl-C stops and removes everything
    python -m demos.high_availability.cluster --loopback # any user: nginx balancing 3 local backends

Every function takes ``start(name, argv, ready)``, which starts a process and returns it once
``ready()`` is true: the harness's ``run.service`` in a scenario, ``Services.start`` here.
Without root, nginx or keepalived, ``missing()`` says exactly what is missing and how to get it,
and the loopback half still runs.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from . import configs
from .topology import ADDRESSES, VIP, Topology, missing as topology_missing

Start = Callable[..., object]
BALANCERS = ("lb1", "lb2")
BACKEND_PORT = 8001
SBIN = "/usr/sbin:/sbin"


class PortInUse(RuntimeError):
    """A port the cluster needs is taken by another program."""


def find(program: str) -> Optional[str]:
    return shutil.which(program, path=f"{os.environ.get('PATH', '')}:{SBIN}")


def missing(vip: bool = True) -> list[str]:
    """What this machine lacks, each saying how to get it: nginx always; with ``vip``, also
    keepalived, iproute2 and root."""
    found = [f"{program} not found: install it (Debian: `apt-get install {program}`)"
             for program in (("nginx", "keepalived") if vip else ("nginx",)) if not find(program)]
    return found + (topology_missing() if vip else [])


def backend_addresses(net: Optional[Topology], count: int) -> list[str]:
    """Where the backends listen: ``10.66.0.20:8001``... in the backends' namespace, else free
    loopback ports."""
    if net is not None:
        return [f"{ADDRESSES['backends']}:{BACKEND_PORT + k}" for k in range(count)]
    from load.processes import free_port
    return [f"127.0.0.1:{free_port()}" for _ in range(count)]


def start_backends(start: Start, net: Optional[Topology], addresses: list[str]) -> list:
    services = []
    for number, address in enumerate(addresses, 1):
        host, port = configs.parse_backend(address)
        argv = [sys.executable, "-m", "demos.high_availability.backend", "--name", f"backend-{number}",
                "--host", host, "--port", str(port)]
        services.append(start(f"backend-{number}", wrap(net, "backends", argv),
                              ready=lambda host=host, port=port: http_ok(net, "backends", host, port, "/health")))
    return services


def start_nginx(start: Start, folder: Path, name: str, net: Optional[Topology], backends: list[str],
                listen_port: int = 80, **options):
    """nginx ``name`` balancing ``backends`` (options: see ``configs.nginx_conf``), on port 80 in
    its namespace, or on ``127.0.0.1:listen_port`` without one."""
    if net is None:
        from load.processes import port_is_free
        if not port_is_free(listen_port):
            raise PortInUse(f"127.0.0.1:{listen_port} is in use by another program: pick another port")
    listen = str(listen_port) if net is not None else f"127.0.0.1:{listen_port}"
    conf = configs.nginx_conf(Path(folder) / name, name, listen, backends, **options)
    role = name if net is not None else None
    return start(f"nginx-{name}", wrap(net, role, configs.nginx_argv(conf)),
                 ready=lambda: http_ok(net, role, "127.0.0.1", listen_port, configs.HEALTH_PATH))


def start_keepalived(start: Start, folder: Path, name: str, net: Topology, setting: configs.Failover,
                     master: bool):
    conf = configs.keepalived_conf(Path(folder) / name, name, setting, master=master, vip=VIP)
    events = conf.parent / "events.csv"
    return start(f"keepalived-{name}", net.exec_argv(name, configs.keepalived_argv(conf)),
                 ready=lambda: len(events.read_text().splitlines()) > 1)   # its first state: it runs


def wait_for_holder(net: Topology, role: str, timeout_s: float) -> float:
    """Wait until ``role`` holds the virtual IP and the client gets an answer through it; return the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if net.holds_vip(role) and net.http_ok("client", VIP, 80, "/"):
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"{role} did not take the virtual IP {VIP} within {timeout_s:g} s: see its keepalived log")


def wrap(net: Optional[Topology], role: Optional[str], argv: list[str]) -> list[str]:
    return net.exec_argv(role, argv) if net is not None and role else argv


def http_ok(net: Optional[Topology], role: Optional[str], host: str, port: int, path: str) -> bool:
    if net is not None and role:
        return net.http_ok(role, host, port, path)
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


# --- by hand ----------------------------------------------------------------------------------

class Services:
    """Processes started for a reader, through the harness's Service; all stopped at the end."""

    def __init__(self, folder: Path):
        self.folder, self.started = folder, []

    def start(self, name: str, argv: list[str], *, ready):
        from load.harness import Service
        print(f"  starting {name}: {' '.join(argv)}", flush=True)
        service = Service(name, argv, log_path=self.folder / "logs" / f"{name}.log", ready=ready)
        self.started.append(service)
        return service.start()

    def stop(self) -> None:
        for service in reversed(self.started):
            service.stop()


def main(argv=None) -> None:
    import signal
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--loopback", action="store_true", help="no namespaces, no virtual IP: nginx on loopback")
    parser.add_argument("--backends", type=int, default=3)
    parser.add_argument("--port", type=int, default=8080, help="nginx's loopback port (with --loopback)")
    parser.add_argument("--setting", choices=configs.SETTINGS, default="article")
    parser.add_argument("--folder", help="where the configs and logs go (default: a new temp folder)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="high-availability-")).resolve()
    lacking = missing(vip=not args.loopback)
    if lacking and not args.loopback:
        print("the virtual IP needs what this machine lacks:\n  " + "\n  ".join(lacking), flush=True)
        if missing(vip=False):
            sys.exit("and nginx is missing too: " + "; ".join(missing(vip=False)))
        print("running the part that works without them: nginx balancing local backends on loopback", flush=True)
        args.loopback = True
    elif lacking:
        sys.exit("; ".join(lacking))
    services = Services(folder)
    net = None if args.loopback else Topology()
    try:
        if net is not None:
            net.create()
        addresses = backend_addresses(net, args.backends)
        start_backends(services.start, net, addresses)
        if net is None:
            start_nginx(services.start, folder, "lb1", None, addresses, listen_port=args.port)
            print(f"\nnginx balances {', '.join(addresses)} at http://127.0.0.1:{args.port}/ ; try:\n"
                  f"  curl -si http://127.0.0.1:{args.port}/ | grep -e X-Balancer -e backend\n"
                  f"configs and logs: {folder}\nCtrl-C stops everything.", flush=True)
        else:
            for number, name in enumerate(BALANCERS):
                start_nginx(services.start, folder, name, net, addresses)
            setting = configs.SETTINGS[args.setting]
            for number, name in enumerate(BALANCERS):
                start_keepalived(services.start, folder, name, net, setting, master=number == 0)
            waited = wait_for_holder(net, "lb1", setting.master_down_s + 10)
            print(f"\nlb1 holds {VIP} (after {waited:.1f} s); from the client's namespace:\n"
                  f"  ip netns exec {net.ns('client')} curl -si http://{VIP}/ | grep -e X-Balancer -e backend\n"
                  f"  ip netns exec {net.ns('client')} {sys.executable} -m demos.high_availability.probe "
                  f"--url http://{VIP}/ --out /tmp/probe.csv\n"
                  f"then kill lb1's nginx, its master and its worker (its process group), and watch lb2 take over:\n"
                  f"  kill -9 -- -$(cat {folder}/lb1/nginx.pid); ip -n {net.ns('lb2')} -4 -o addr show dev eth0\n"
                  f"configs and logs: {folder}\nCtrl-C stops everything and removes the namespaces.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        services.stop()
        if net is not None:
            net.remove()


if __name__ == "__main__":
    main()
