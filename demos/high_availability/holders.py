"""Which balancer holds the virtual IP, sampled every 0.1 s from outside (``ip -n NS addr``).

keepalived's own notifications say what each node believes; this says what the kernels really
hold: after keepalived is killed with SIGKILL the address stays on the old master, and for a
while two nodes hold it. One CSV row per sample: ``t`` (epoch seconds), then 1 or 0 per node.

Run: python -m demos.high_availability.holders --vip 10.66.0.100 --node lb1=ha1a2b3c-lb1 --node lb2=ha1a2b3c-lb2 --out holders.csv
"""
import argparse
import csv
import signal
import subprocess
import threading
import time


def holds(namespace: str, vip: str) -> int:
    done = subprocess.run(["ip", "-n", namespace, "-4", "-o", "addr", "show"], capture_output=True, text=True)
    return int(f" {vip}/" in done.stdout)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--vip", required=True)
    parser.add_argument("--node", action="append", required=True, help="name=namespace, once per node")
    parser.add_argument("--out", required=True)
    parser.add_argument("--every", type=float, default=0.1)
    args = parser.parse_args(argv)
    nodes = dict(node.split("=", 1) for node in args.node)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with open(args.out, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["t", *nodes])
        print(f"holders: sampling {args.vip} on {', '.join(nodes)} every {args.every:g} s", flush=True)
        due = time.monotonic()
        while not stop.is_set():
            writer.writerow([f"{time.time():.3f}", *(holds(ns, args.vip) for ns in nodes.values())])
            out.flush()
            due += args.every
            stop.wait(max(0.0, due - time.monotonic()))


if __name__ == "__main__":
    main()
