"""Bulk issuance through the queue: each chosen user gets exactly one coupon, progress is visible,
and a bulk worker SIGKILLed mid-job (RabbitMQ delivers its unacknowledged users again) still gives
no one two."""
import sys

import pytest

from load.harness import Service, get_json, http_ready, log_ready, wait_for
from load.servers import free_port

from test_coupon_system_guarantees import HALF_OFF, post   # tests/integration is on sys.path (pytest prepends it)


@pytest.fixture
def bulk_shop(tmp_path):
    started = []

    def start(broker_url: str = "", rate: int = 400):
        env = {"DATA_DIR": str(tmp_path), "BROKER_URL": broker_url, "REDIS_URL": "", "DATABASE_URL": "",
               "BULK_RATE": str(rate)}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        worker = Service("bulk", [sys.executable, "-m", "demos.coupon_system.bulk", "--strategy", "atomic"],
                         log_path=tmp_path / "bulk.log", ready=log_ready(tmp_path / "bulk.log", "bulk worker ready"), env=env)
        service = Service("atomic", [sys.executable, "-m", "demos.coupon_system.atomic", "--port", str(port), "--bulk"],
                          log_path=tmp_path / "atomic.log", ready=http_ready(f"{url}/health"), env=env)
        started.extend([worker.start(), service.start()])
        return url, worker

    yield start
    for service in reversed(started):
        service.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker", ["filesystem", "rabbitmq"])
def test_every_chosen_user_gets_exactly_one_even_when_the_worker_is_killed(bulk_shop, request, broker):
    url, worker = bulk_shop(request.getfixturevalue("rabbitmq_url") if broker == "rabbitmq" else "", rate=300)
    status, batch = post(f"{url}/batches", {"name": "members", "stock": 1000, "rules": HALF_OFF})
    users = [f"member-{n}" for n in range(400)]
    status, job = post(f"{url}/batches/{batch['id']}/bulk", {"users": users + users[:50]})   # duplicates in the list
    assert status == 202 and job["users"] == 400
    progress = lambda: get_json(f"{url}/bulk/{job['job']}")
    wait_for(lambda: progress()["issued"] >= 100, 20, "the bulk job's first users")
    if broker == "rabbitmq":      # the embedded broker would lose the users the worker holds
        worker.kill()
        worker.start()
    wait_for(lambda: progress()["finished_at"], 30, "the bulk job to finish")
    done = progress()
    assert done["total"] == 400 and done["issued"] + done["refused"] >= 400
    audit = get_json(f"{url}/audit")["batches"][str(batch["id"])]
    assert audit["coupons"] == audit["users"] == 400 and audit["double_claims"] == 0, audit
    status, again = post(f"{url}/batches/{batch['id']}/claim", {"user": "member-7"})
    assert status == 200                                      # theirs already: one per user
