"""Chapter 6's guarantee for a backend's death: with nginx's ``proxy_next_upstream`` at its default,
a backend SIGKILLed with at least 20 requests in flight on it costs no failed GET (nginx retries
them on the other backend); the control, with it off, fails some. A POST already sent fails unless
``non_idempotent`` is set. And a bad config fails fast, saying what is wrong. Needs nginx (loopback
ports, no root)."""
import concurrent.futures
import os
import time
import urllib.error
import urllib.request

import pytest

from demos.high_availability import cluster
from load.harness import ServiceFailed, get_json, wait_for
from load.processes import free_port

IN_FLIGHT = 24      # requests on the backend that dies (at least 20)
HOLD_MS = 3000     # long enough for all the requests to arrive on a busy machine


@pytest.fixture
def services(tmp_path):
    if problems := cluster.missing(vip=False):
        (pytest.fail if os.environ.get("REQUIRE_SERVERS") == "1" else pytest.skip)("; ".join(problems))
    started = cluster.Services(tmp_path)
    yield started
    started.stop()


def balancer(services, tmp_path, **options):
    addresses = cluster.backend_addresses(None, 2)
    backends = cluster.start_backends(services.start, None, addresses)
    port = free_port()
    cluster.start_nginx(services.start, tmp_path, "lb1", None, addresses, listen_port=port, **options)
    return backends, addresses, f"http://127.0.0.1:{port}"


def ask(url: str, method: str) -> int:
    data = b'{"item": "book", "delay_ms": %d}' % HOLD_MS if method == "POST" else None
    path = "/order" if method == "POST" else f"/?delay_ms={HOLD_MS}"
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def kill_one_with_requests_in_flight(services, tmp_path, method: str, **options) -> list[int]:
    """2 * IN_FLIGHT requests held HOLD_MS by the backends (round robin: IN_FLIGHT on each); once
    backend-1 holds at least IN_FLIGHT, SIGKILL it; every request's status (0: no answer)."""
    backends, addresses, url = balancer(services, tmp_path, **options)
    stats_url = f"http://{addresses[0]}/stats"
    with concurrent.futures.ThreadPoolExecutor(2 * IN_FLIGHT) as pool:
        answers = [pool.submit(ask, url, method) for _ in range(2 * IN_FLIGHT)]
        wait_for(lambda: get_json(stats_url)["in_flight"] >= IN_FLIGHT, 10, f"{IN_FLIGHT} requests in flight on backend-1")
        backends[0].kill()
        return [answer.result() for answer in answers]


@pytest.mark.timeout(60)
def test_no_get_fails_when_a_backend_dies_with_requests_in_flight(services, tmp_path):
    statuses = kill_one_with_requests_in_flight(services, tmp_path, "GET")
    assert statuses == [200] * len(statuses)
    retried = [line for line in (tmp_path / "lb1" / "access.tsv").read_text().splitlines() if ", " in line]
    assert len(retried) >= IN_FLIGHT       # every request on the dead backend went to the other one


@pytest.mark.timeout(60)
def test_with_proxy_next_upstream_off_the_requests_in_flight_fail(services, tmp_path):
    statuses = kill_one_with_requests_in_flight(services, tmp_path, "GET", next_upstream=False)
    assert statuses.count(502) >= IN_FLIGHT and statuses.count(200) >= IN_FLIGHT


@pytest.mark.timeout(60)
def test_a_post_in_flight_fails_unless_non_idempotent(services, tmp_path):
    statuses = kill_one_with_requests_in_flight(services, tmp_path, "POST")
    assert statuses.count(502) >= IN_FLIGHT and statuses.count(201) >= IN_FLIGHT


@pytest.mark.timeout(60)
def test_non_idempotent_retries_the_post_too_and_may_run_it_twice(services, tmp_path):
    statuses = kill_one_with_requests_in_flight(services, tmp_path, "POST", non_idempotent=True)
    assert statuses == [201] * len(statuses)


def test_an_unknown_backend_address_fails_fast_saying_so(services, tmp_path):
    started = time.monotonic()
    with pytest.raises(ServiceFailed, match="host not found in upstream"):
        cluster.start_nginx(services.start, tmp_path, "lb1", None, ["no-such-backend.invalid:8001"],
                            listen_port=free_port())
    assert time.monotonic() - started < 10


def test_a_port_in_use_fails_at_once_saying_so(services, tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(cluster.PortInUse, match=f"127.0.0.1:{taken.getsockname()[1]} is in use"):
            cluster.start_nginx(services.start, tmp_path, "lb1", None, ["127.0.0.1:8001"],
                                listen_port=taken.getsockname()[1])
