"""A client that asks one URL every 20 ms and timestamps every answer: the gap a failover leaves.

Each request is a new connection (``Connection: close``), as a new visitor's would be, sent on
schedule whether or not the previous one has answered (a thread each, at most ``--max-in-flight``),
with ``--timeout`` for connecting and answering. One CSV row per request, written as it ends:
``sent_at, done_at`` (epoch seconds), ``ok`` (1 for a 200), ``status``, ``balancer`` (nginx's
``X-Balancer``), ``backend`` (from the body) and ``error``. Locust's 2-second statistics are too
coarse for a gap of a few hundred milliseconds; this is not. It runs until SIGTERM or ``--seconds``.

Run (inside the client's namespace): python -m demos.high_availability.probe --url http://10.66.0.100/ --out probe.csv
"""
import argparse
import csv
import http.client
import json
import signal
import threading
import time
import urllib.parse

FIELDS = ["sent_at", "done_at", "ok", "status", "balancer", "backend", "error"]


def ask(url: urllib.parse.SplitResult, timeout_s: float) -> dict:
    sent = time.time()
    row = {"sent_at": f"{sent:.6f}", "ok": 0, "status": "", "balancer": "", "backend": "", "error": ""}
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout_s)
    try:
        connection.request("GET", url.path or "/", headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        row.update(status=response.status, ok=int(response.status == 200),
                   balancer=response.getheader("X-Balancer", ""))
        try:
            row["backend"] = json.loads(body).get("backend", "")
        except ValueError:
            pass
    except (OSError, http.client.HTTPException) as error:
        row["error"] = f"{type(error).__name__}: {error}"[:120]
    finally:
        connection.close()
    row["done_at"] = f"{time.time():.6f}"
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True, help="the CSV to write")
    parser.add_argument("--every", type=float, default=0.02, help="seconds between requests (default 0.02)")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to connect and to answer (default 1)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at SIGTERM)")
    parser.add_argument("--max-in-flight", type=int, default=200)
    args = parser.parse_args(argv)
    url = urllib.parse.urlsplit(args.url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock, slots = threading.Lock(), threading.BoundedSemaphore(args.max_in_flight)
    first = threading.Event()
    with open(args.out, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()

        def one() -> None:
            try:
                row = ask(url, args.timeout)
                with lock:
                    writer.writerow(row)
                    out.flush()
                if row["ok"] and not first.is_set():
                    first.set()
                    print(f"probe: first answer from {row['balancer']} / {row['backend']}", flush=True)
            finally:
                slots.release()

        print(f"probe: asking {args.url} every {args.every:g} s into {args.out}", flush=True)
        started = due = time.monotonic()
        threads = []
        while not stop.is_set() and not (args.seconds and time.monotonic() - started >= args.seconds):
            if slots.acquire(timeout=args.timeout):
                thread = threading.Thread(target=one, daemon=True)
                thread.start()
                threads.append(thread)
            due += args.every
            stop.wait(max(0.0, due - time.monotonic()))
            threads = [thread for thread in threads if thread.is_alive()]
        for thread in threads:                 # the last answers, then the file is whole
            thread.join(args.timeout + 1)
    print("probe: stopped", flush=True)


if __name__ == "__main__":
    main()
