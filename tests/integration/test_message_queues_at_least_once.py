"""The queued variant under SIGKILL of its worker, on each broker (and once on PostgreSQL).

The worker acknowledges a job only after the provider has sent it. Killed at the worst moments:
- after the send, before the ack: RabbitMQ and Redis deliver the job again; the provider sees a
  second attempt, and its idempotency key keeps it from reaching the user twice;
- before the send: RabbitMQ and Redis deliver it again and it is sent; the embedded filesystem
  broker removed it when the worker took it, so it is lost. That is why a real broker is used.
"""
import json
import time
import urllib.request

import pytest

REDIS_VISIBILITY_S = 2   # short, so the test need not wait the default 30 s


@pytest.fixture(params=["rabbitmq", "redis", "filesystem"])
def broker(request):
    if request.param == "filesystem":
        return "filesystem", ""
    return request.param, request.getfixturevalue(f"{request.param}_url")


def register_one(url: str) -> int:
    body = json.dumps({"email": "victim@example.com", "phone": "+15551234567"}).encode()
    request = urllib.request.Request(f"{url}/register", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["id"]


def attempts_by_key(running) -> dict:
    with running.database.transaction() as db:
        return dict(db.execute("SELECT idempotency_key, COUNT(*) FROM send_attempts GROUP BY idempotency_key"))


def sent_keys(running) -> set:
    with running.database.transaction() as db:
        return {key for (key,) in db.execute("SELECT idempotency_key FROM sends")}


@pytest.mark.parametrize("moment", ["before-ack", "before-send"])
def test_worker_killed_mid_job(registration, broker, moment):
    kill_the_worker_mid_job(registration, *broker, moment)


def test_worker_killed_before_the_ack_on_rabbitmq_with_postgresql(registration, rabbitmq_url,
                                                                  postgres_database_url):
    """The same on PostgreSQL: the duplicate attempt is recorded, the idempotency key holds."""
    kill_the_worker_mid_job(registration, "rabbitmq", rabbitmq_url, "before-ack", postgres_database_url)


def kill_the_worker_mid_job(registration, name: str, url: str, moment: str, database_url: str = "") -> None:
    running = registration("queued", url, env={"BROKER_VISIBILITY_TIMEOUT": str(REDIS_VISIBILITY_S)},
                           database_url=database_url)
    doomed = running.start_worker(f"--hold-{moment}", "60")
    running.start()
    user_id = register_one(running.url)
    marker = "sent" if moment == "before-ack" else "took"
    line = running.wait_for(lambda: next((l for l in doomed.log_path.read_text().splitlines()
                                          if l.startswith(marker)), None), 10, f"the worker to log '{marker}'")
    killed_key = line.split()[1].rstrip(",")
    assert killed_key in (f"email:{user_id}", f"sms:{user_id}")
    doomed.kill()                                   # SIGKILL: no ack, no clean-up
    running.start_worker()
    other_key = ({f"email:{user_id}", f"sms:{user_id}"} - {killed_key}).pop()

    if name == "filesystem":
        running.wait_for(lambda: other_key in sent_keys(running), 10, f"{other_key} to be sent")
        # give a redelivery every chance to show up (none can, the file is gone), looking all along
        expected = {killed_key: 1, other_key: 1} if moment == "before-ack" else {other_key: 1}
        running.holds(lambda: attempts_by_key(running) == expected, 2, f"attempts stay {expected}")
        if moment == "before-ack":
            assert killed_key in sent_keys(running)             # sent once, never redelivered
        else:
            assert killed_key not in sent_keys(running)         # lost: never sent to anyone
        return

    both = {f"email:{user_id}", f"sms:{user_id}"}
    running.wait_for(lambda: sent_keys(running) >= both, 10 + REDIS_VISIBILITY_S, "both jobs to be sent")
    running.wait_for(lambda: attempts_by_key(running).get(killed_key, 0) >= (2 if moment == "before-ack" else 1),
                     10 + REDIS_VISIBILITY_S, "the redelivered attempt")
    # then watch past another visibility timeout: a late third delivery must fail the test too
    expected = {killed_key: 2 if moment == "before-ack" else 1, other_key: 1}   # raw: the duplicate is visible
    running.holds(lambda: attempts_by_key(running) == expected, REDIS_VISIBILITY_S + 1.5, f"attempts stay {expected}")
    assert running.audit()["sends"] == {"email": 1, "sms": 1}            # effective: exactly once

