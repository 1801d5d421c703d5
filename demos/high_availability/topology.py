"""The network the chapter runs in: network namespaces created for one run and always removed.

    with Topology() as net:                 # about 0.1 s; needs root and iproute2
        net.exec_argv("lb1", ["nginx", ...]) # a command to run inside a namespace
        net.http("client", VIP, 80, "/")     # an HTTP GET from inside a namespace
        net.cut("lb1"); net.mend("lb1")      # pull lb1's cable at the switch, plug it back
    # every namespace gone, every process left in them killed, also after an error or Ctrl-C

One namespace per role: ``switch`` (a bridge, the only thing that connects the others), ``lb1``
and ``lb2`` (a load balancer each: nginx and keepalived), ``backends`` (the application servers)
and ``client`` (the probe and Locust). The addresses (10.66.0.0/24) exist only inside those
namespaces; nothing leaves the machine, and two runs never meet (each has its own namespaces,
named ``ha<6 hex digits>-<role>``).

From a shell: ``python -m demos.high_availability.topology --leftovers`` lists namespaces a killed
run left behind, ``--remove-leftovers`` removes them.
"""
import argparse
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from pathlib import Path

SUBNET_BITS = 24
ADDRESSES = {"lb1": "10.66.0.11", "lb2": "10.66.0.12", "backends": "10.66.0.20", "client": "10.66.0.30"}
VIP = "10.66.0.100"
ROLES = ("switch", *ADDRESSES)
NETNS_DIR = Path("/run/netns")
NAME = re.compile(r"ha[0-9a-f]{6}-(?:%s)" % "|".join(ROLES))
CLONE_NEWNET = 0x40000000


class TopologyError(RuntimeError):
    """The namespaces could not be made; the message says what is missing and how to get it."""


def missing() -> list[str]:
    """What this machine lacks to build the topology, each saying how to get it."""
    found = []
    if os.geteuid() != 0:
        found.append("root (network namespaces): run it as root, e.g. `sudo make bench`")
    if not shutil.which("ip", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])):
        found.append("ip not found: install it (Debian: `apt-get install iproute2`)")
    return found


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise TopologyError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


class Topology:
    def __init__(self, prefix: str = ""):
        self.prefix = prefix or f"ha{uuid.uuid4().hex[:6]}"
        self.created: list[str] = []

    def ns(self, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        return f"{self.prefix}-{role}"

    # --- making and removing ------------------------------------------------------------------

    def create(self) -> "Topology":
        if problems := missing():
            raise TopologyError("; ".join(problems))
        try:
            for role in ROLES:
                ip("netns", "add", self.ns(role))
                self.created.append(self.ns(role))
                ip("-n", self.ns(role), "link", "set", "lo", "up")
            switch = self.ns("switch")
            ip("-n", switch, "link", "add", "br0", "type", "bridge")
            ip("-n", switch, "link", "set", "br0", "up")
            for role, address in ADDRESSES.items():
                # the switch's end is named after the role; the other end is eth0 in the role's namespace
                ip("-n", switch, "link", "add", role, "type", "veth", "peer", "name", "eth0", "netns", self.ns(role))
                ip("-n", switch, "link", "set", role, "master", "br0", "up")
                ip("-n", self.ns(role), "addr", "add", f"{address}/{SUBNET_BITS}", "dev", "eth0")
                ip("-n", self.ns(role), "link", "set", "eth0", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Kill whatever still runs in the namespaces, then delete them (safe to call twice)."""
        remove(self.prefix)
        self.created.clear()

    def __enter__(self) -> "Topology":
        return self.create()

    def __exit__(self, *exc_info) -> None:
        self.remove()

    # --- using ----------------------------------------------------------------------------------

    def exec_argv(self, role: str, argv: list[str]) -> list[str]:
        """``argv`` run inside ``role``'s namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.ns(role), *argv]

    def cut(self, role: str) -> None:
        """Pull ``role``'s cable at the switch: its end of the link goes down."""
        ip("-n", self.ns("switch"), "link", "set", role, "down")

    def mend(self, role: str) -> None:
        ip("-n", self.ns("switch"), "link", "set", role, "up")

    def holds_vip(self, role: str) -> bool:
        return f" {VIP}/" in ip("-n", self.ns(role), "-4", "-o", "addr", "show", "dev", "eth0")

    def socket(self, role: str) -> socket.socket:
        """A TCP socket created inside ``role``'s namespace (a socket stays in the namespace it was
        made in): a helper thread enters the namespace, makes it and ends."""
        made: dict = {}

        def make() -> None:
            try:
                with open(NETNS_DIR / self.ns(role)) as handle:
                    if ctypes.CDLL(None, use_errno=True).setns(handle.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.ns(role)} failed")
                made["socket"] = socket.socket()
            except BaseException as error:
                made["error"] = error

        thread = threading.Thread(target=make, name=f"socket in {self.ns(role)}")
        thread.start()
        thread.join()
        if "error" in made:
            raise made["error"]
        return made["socket"]

    def http(self, role: str, host: str, port: int, path: str = "/", timeout_s: float = 1.0) -> tuple[int, dict, str]:
        """GET ``http://host:port/path`` from inside ``role``'s namespace: (status, headers, body)."""
        with self.socket(role) as sock:
            sock.settimeout(timeout_s)
            sock.connect((host, port))
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        status, *lines = head.split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        return int(status.split(" ", 2)[1]), headers, body

    def http_ok(self, role: str, host: str, port: int, path: str = "/") -> bool:
        try:
            return self.http(role, host, port, path)[0] == 200
        except (OSError, ValueError, IndexError):
            return False


def leftovers(prefix: str = "") -> list[str]:
    """This chapter's namespaces that exist now (``prefix``: only one run's)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(path.name for path in NETNS_DIR.iterdir()
                  if NAME.fullmatch(path.name) and path.name.startswith(prefix))


def remove(prefix: str = "") -> list[str]:
    """SIGKILL every process inside, then delete, each of this chapter's namespaces (``prefix``:
    only one run's); returns what it removed."""
    names = leftovers(prefix)
    for name in names:
        with contextlib.suppress(TopologyError):
            for pid in ip("netns", "pids", name).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    for name in names:
        with contextlib.suppress(TopologyError):
            ip("netns", "del", name)
    return names


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="chapter 6's network namespaces")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--leftovers", action="store_true", help="list namespaces a killed run left behind")
    group.add_argument("--remove-leftovers", action="store_true", help="remove them (and what runs inside)")
    args = parser.parse_args(argv)
    if args.leftovers:
        print("\n".join(leftovers()) or "none")
    else:
        print("removed: " + (", ".join(remove()) or "none"))


if __name__ == "__main__":
    main()
