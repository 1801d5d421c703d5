"""Chapter 2's processes, started the one way (``load.harness.Service``): the push API and N gateway
processes sharing one data folder (the SQLite store, the embedded routing table and, without
``BROKER_URL``, the filesystem broker). Scenarios pass ``run.service``; tests pass ``service_starter``.
"""
import json
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from load.harness import Service, get_json, http_ready
from load.servers import free_port


def service_starter(folder: Path, started: list) -> Callable:
    """``start(name, argv, ready=..., env=...)`` for tests: a Service with its log in ``folder``, kept in ``started``."""
    def start(name, argv, *, ready, env=None, timeout_s=30.0):
        service = Service(name, argv, log_path=folder / f"{name}.log", ready=ready, env=env, timeout_s=timeout_s)
        started.append(service)
        return service.start()
    return start


@dataclass
class System:
    folder: Path
    start: Callable
    broker_url: str = ""
    redis_url: str = ""
    database_url: str = ""       # the store (and, without Redis, the routing table); SQLite in the folder when empty
    env_extra: dict = field(default_factory=dict)
    api_url: str = ""
    gateways: dict = field(default_factory=dict)      # name -> (ws url, Service)

    def __post_init__(self):
        self.namespace = f"push-{uuid.uuid4().hex[:10]}"   # its own queues and Redis keys on a shared server
        self.gateway_ports = {}

    @property
    def env(self) -> dict:
        return {"DATA_DIR": str(self.folder / "data"), "BROKER_URL": self.broker_url, "REDIS_URL": self.redis_url,
                "DATABASE_URL": self.database_url, "PUSH_NAMESPACE": self.namespace,
                "GATEWAYS": ",".join(url for url, _ in self.gateways.values()), **self.env_extra}

    def start_gateway(self, name: str, *args: str, port: int = 0) -> str:
        port = port or self.gateway_ports.get(name) or free_port()
        self.gateway_ports[name] = port
        service = self.start(name, [sys.executable, "-m", "demos.push_at_scale.gateway", "--port", str(port),
                                    "--gateway-id", name, *args],
                             ready=http_ready(f"http://127.0.0.1:{port}/health"),
                             env=self.env)
        self.gateways[name] = (f"ws://127.0.0.1:{port}", service)
        return self.gateways[name][0]

    def start_api(self, threads: int = 8) -> str:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = self.start("api", [sys.executable, "-m", "demos.push_at_scale.api", "--port", str(port),
                                      "--threads", str(threads)], ready=http_ready(f"{self.api_url}/health"),
                              env=self.env)
        return self.api_url

    def urls(self) -> list[str]:
        return [url for url, _ in self.gateways.values()]

    # ---- talking to the API (tests, scenarios, the receiver)

    def post(self, path: str, body) -> tuple[int, dict]:
        return post_json(self.api_url + path, body)

    def register(self, device: str, topics=()) -> str:
        status, answer = self.post("/devices", {"device": device, "topics": list(topics)})
        assert status == 201, answer
        return answer["token"]

    def push(self, **push) -> dict:
        status, answer = self.post("/push", push)
        if status != 202:
            raise RuntimeError(f"push {push} answered {status}: {answer}")
        return answer

    def gateway_stats(self, name: str, timeout_s: float = 60) -> dict:
        """A gateway's counters (a gateway holding 16,000 devices on a busy machine can take seconds)."""
        return get_json(self.gateways[name][0].replace("ws://", "http://") + "/stats", timeout=timeout_s)


def post_json(url: str, body, timeout_s: float = 10) -> tuple[int, dict]:
    """POST ``body`` (JSON, or bytes as they are); the status and the JSON answer, 4xx included."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
