"""One wiring's whole stack (sink, subscriber manager, e-mail service, notifier or orchestrator,
inventory, consumers), started through a ``start(name, argv, env=, ready=)`` function: the harness's
``run.service`` in a scenario, ``load.harness.Service`` in the tests and by hand:

    python -m load.rest_vs_messaging.stack --wiring events          # prints each service's URL; Ctrl-C stops

Its data lives in one folder (a SQLite file per service), its queues have their own prefix.
"""
import argparse
import json
import signal
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from demos.rest_vs_messaging import books
from demos.rest_vs_messaging.service import WIRINGS
from demos.rest_vs_messaging.settings import Settings
from load.harness import Service, http_ready, log_ready
from load.processes import free_port

SERVICE = "demos.rest_vs_messaging.service"

# longer than a Redis redelivery takes (events.VISIBILITY_TIMEOUT_S, 10 s): a stall this long is a loss
STALLED_S = 15.0


class Stack:
    def __init__(self, wiring: str, folder: Path, start: Callable, *, broker_url: str = "",
                 sink_delay_ms: float = 5, refuse_share: float = 0.0, email_concurrency: int = 8,
                 notifier_concurrency: int = 8, queue_prefix: str = "", log_folder: Path | None = None,
                 database_url: str = ""):
        if wiring not in WIRINGS:
            raise ValueError(f"wiring is one of {', '.join(WIRINGS)}, not {wiring!r}")
        self.wiring, self.folder, self._start = wiring, Path(folder), start
        self.log_folder = Path(log_folder or folder)   # where ``start`` writes ``<name>.log``
        self.sink_delay_ms, self.refuse_share = sink_delay_ms, refuse_share
        self.email_concurrency, self.notifier_concurrency = email_concurrency, notifier_concurrency
        self.ports = {name: free_port() for name in ("inventory", "subscribers", "notifier", "email", "orchestrator", "smtp")}
        self.url = f"http://127.0.0.1:{self.ports['inventory']}"
        self.env = {"DATA_DIR": str(self.folder / "data"), "BROKER_URL": broker_url, "DATABASE_URL": database_url,
                    "QUEUE_PREFIX": queue_prefix or f"restock-{uuid.uuid4().hex[:10]}",
                    "SMTP_PORT": str(self.ports["smtp"]),
                    **{f"{name.upper()}_URL": f"http://127.0.0.1:{self.ports[name]}"
                       for name in ("subscribers", "notifier", "email", "orchestrator")}}
        self.services: dict = {}
        self.consumers = 0

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.env["DATA_DIR"], database_url=self.env["DATABASE_URL"], broker_url=self.env["BROKER_URL"],
                        queue_prefix=self.env["QUEUE_PREFIX"], subscribers_url="", notifier_url="", email_url="",
                        orchestrator_url="", smtp_port=self.ports["smtp"])

    def _http(self, name: str, role: str, *extra: str) -> tuple:
        url = f"http://127.0.0.1:{self.ports[role]}"
        return name, [sys.executable, "-m", SERVICE, role, "--port", str(self.ports[role]), *extra], http_ready(f"{url}/health")

    def _consumer(self, kind: str, *extra: str) -> tuple:
        self.consumers += 1
        name = f"{kind}-consumer-{self.consumers}"
        return (name, [sys.executable, "-m", "demos.rest_vs_messaging.events", kind, *extra],
                log_ready(self.log_folder / f"{name}.log", "worker ready"))

    def _launch(self, planned: list[tuple]) -> None:
        """Start every planned service at once (none needs another to start) and wait for them all."""
        with ThreadPoolExecutor(len(planned)) as pool:
            futures = {name: pool.submit(self._start, name, argv, env=self.env, ready=ready) for name, argv, ready in planned}
        for name, future in futures.items():
            self.services[name] = future.result()

    def consumer(self, kind: str, *extra: str):
        """Start one events consumer (``notifier``, ``email``, ``analytics``); ready once its queue is bound."""
        name, argv, ready = self._consumer(kind, *extra)
        self.services[name] = self._start(name, argv, env=self.env, ready=ready)
        return self.services[name]

    def consumers_of(self, kind: str, count: int, *extra: str) -> list:
        """Start ``count`` consumers of one kind at once (they share its queue); ready once bound."""
        planned = [self._consumer(kind, *extra) for _ in range(count)]
        self._launch(planned)
        return [self.services[name] for name, _, _ in planned]

    def start(self) -> "Stack":
        planned = [("sink", [sys.executable, "-m", "demos.rest_vs_messaging.sink", "--port", str(self.ports["smtp"]),
                             "--delay-ms", f"{self.sink_delay_ms:g}", "--refuse-share", f"{self.refuse_share:g}"],
                    log_ready(self.log_folder / "sink.log", "sink ready")),
                   self._http("subscribers", "subscribers")]
        if self.wiring == "events":
            # the consumers declare their queues and bindings before they say ready, so no event
            # inventory publishes can find no queue: every restock comes after start() returns
            planned += [self._consumer("email", "--concurrency", str(self.email_concurrency)), self._consumer("notifier")]
        else:
            planned.append(self._http("email", "email"))
            if self.wiring == "pipeline":
                planned.append(self._http("orchestrator", "orchestrator"))
            else:
                concurrency = self.notifier_concurrency if self.wiring == "rest-concurrent" else 1
                planned.append(self._http("notifier", "notifier", "--concurrency", str(concurrency)))
        planned.append(self._http("inventory", "inventory", "--wiring", self.wiring))
        self._launch(planned)
        return self

    def email_service(self):
        """The e-mail service of this wiring: the HTTP service, or the events wiring's e-mail consumer."""
        return self.services.get("email") or next(s for n, s in self.services.items() if n.startswith("email-consumer"))

    def notifier_service(self):
        """The notifier: the REST notifier, the orchestrator, or the events wiring's notifier consumer."""
        return (self.services.get("notifier") or self.services.get("orchestrator")
                or next(s for n, s in self.services.items() if n.startswith("notifier-consumer")))

    def seed(self, products: dict[str, int]) -> None:
        """Products and their subscribers: ``{"p10": 10}`` is product p10 with 10 subscribers."""
        subscribers = f"http://127.0.0.1:{self.ports['subscribers']}"
        for product, count in products.items():
            post(f"{self.url}/products", {"id": product})
            for number in range(count):
                post(f"{subscribers}/subscriptions", {"product": product, "email": f"s{number}-{product}@example.com"})

    def records(self) -> dict:
        return books.read(self.settings)

    def audit(self) -> dict:
        return books.audit(self.records())

    def wait_until_settled(self, timeout_s: float, quiet_s: float = 0.5, stalled_s: float | None = None) -> dict:
        """Wait (bounded) until nothing is missing and the sink has been quiet for ``quiet_s``; the audit.
        With ``stalled_s`` (the scenarios: ``STALLED_S``), also give up once nothing has moved for
        that long while e-mails are missing: a message lost for good (kombu's Redis transport can
        lose one in a broker kill) then costs that, not the whole timeout; the books say so."""
        deadline = time.monotonic() + timeout_s
        last, moved_at = None, time.monotonic()
        while True:
            found = self.audit()
            attempts = found["attempts"]
            if found["missing"] == 0:
                time.sleep(quiet_s)
                again = self.audit()
                if again["attempts"] == attempts or time.monotonic() > deadline:
                    return again
                continue
            if (found["missing"], attempts) != last:
                last, moved_at = (found["missing"], attempts), time.monotonic()
            if time.monotonic() > deadline or (stalled_s and time.monotonic() > moved_at + stalled_s):
                return found
            time.sleep(0.2)


def post(url: str, body: dict, timeout: float = 10) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def service_starter(folder: Path):
    """``start(name, argv, env=, ready=)`` with load.harness.Service, logs in ``folder``; and the list
    of what it started (stop them in reverse)."""
    started: list = []

    def start(name, argv, *, env, ready):
        service = Service(name, argv, log_path=folder / f"{name}.log", ready=ready, env=env)
        started.append(service)
        return service.start()
    return start, started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Start one wiring of chapter 5 by hand.")
    parser.add_argument("--wiring", choices=WIRINGS, default="events")
    parser.add_argument("--folder", default="var/rest_vs_messaging")
    parser.add_argument("--sink-delay-ms", type=float, default=5)
    parser.add_argument("--subscribers", type=int, default=3, help="subscribers of product p1")
    args = parser.parse_args(argv)
    import os
    folder = Path(args.folder) / f"{args.wiring}-{int(time.time())}"
    start, started = service_starter(folder)
    stack = Stack(args.wiring, folder, start, broker_url=os.environ.get("BROKER_URL", ""),
                  sink_delay_ms=args.sink_delay_ms)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stack.start()
        stack.seed({"p1": args.subscribers})
        for name, service in stack.services.items():
            print(f"{name}: pid {service.process.pid}, log {service.log_path}")
        ports = {role: port for role, port in stack.ports.items() if role in stack.services or role == "smtp"}
        print(f"ports: {', '.join(f'{role} {port}' for role, port in ports.items())} "
              f"(fault by hand: python -m load.faults kill-restart --port PORT --down 10)\n"
              f"inventory: {stack.url} (product p1 has {args.subscribers} subscribers)\n"
              f"  curl -s -X POST {stack.url}/products/p1/stock -H 'Content-Type: application/json' -d '{{\"quantity\": 5}}'\n"
              f"another consumer (or one you killed, again): "
              f"{' '.join(f'{k}={v}' for k, v in stack.env.items() if v)} "
              f"python -m demos.rest_vs_messaging.events email\n"
              f"Ctrl-C stops everything and prints the books", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print(json.dumps(stack.audit(), indent=2))
    finally:
        for service in reversed(started):
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
