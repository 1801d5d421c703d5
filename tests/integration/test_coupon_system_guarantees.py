"""The chapter's guarantee, under concurrency, as real processes: no coupon oversold, no user
with two from one batch, every success with its row; and the naive strategy, which breaks it.

- a crowd of users claims from a small batch, 32 at a time, every user clicking twice at once;
- naive (8 threads, autocommit, a 20 ms race window) oversells: the test proves the audit sees it;
- atomic and reservation, on SQLite and PostgreSQL: 0 oversold, 0 double claims;
- reservation with Redis and its consumer SIGKILLed mid-crowd and restarted on the same port and
  data, on RabbitMQ and on Redis as the broker: every claim answered with success has its row
  once the backlog drains.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from demos.coupon_system.store import Database
from load.harness import Service, get_json, http_ready, log_ready, wait_for
from load.servers import free_port

HALF_OFF = [{"rule": "percentage", "percent": 50, "cap_cents": 2000}]


def post(url: str, body: dict, timeout: float = 10) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


class Coupons:
    """A strategy's service (and, for reservation, its consumer) as real processes."""

    def __init__(self, folder, strategy: str, env: dict, consumer_args: tuple = ()):
        self.folder, self.strategy = folder, strategy
        self.database_url = env.get("DATABASE_URL") or f"sqlite:///{folder / 'coupons.db'}"
        self.env = {"DATA_DIR": str(folder), "BROKER_URL": "", "REDIS_URL": "", **env, "DATABASE_URL": self.database_url}
        self.url = f"http://127.0.0.1:{free_port()}"
        self.service = Service(strategy, [sys.executable, "-m", f"demos.coupon_system.{strategy}",
                                          "--port", self.url.rsplit(":", 1)[1], "--threads", "8"],
                               log_path=folder / f"{strategy}.log", ready=http_ready(f"{self.url}/health"), env=self.env)
        self.consumer = Service("consumer", [sys.executable, "-m", "demos.coupon_system.consumer", *consumer_args],
                                log_path=folder / "consumer.log", ready=log_ready(folder / "consumer.log", "consumer ready"),
                                env=self.env)

    def start(self) -> "Coupons":
        if self.strategy == "reservation":
            self.consumer.start()
        self.service.start()
        return self

    def stop(self):
        self.service.stop()
        self.consumer.stop()

    def batch(self, stock: int) -> int:
        status, body = post(f"{self.url}/batches", {"name": "flash sale", "stock": stock, "rules": HALF_OFF})
        assert status == 201, body
        return body["id"]

    def audit(self) -> dict:
        return get_json(f"{self.url}/audit")

    def wait_for_rows(self, timeout_s: float = 30) -> dict:
        """Until every reservation Redis granted has its row (at once for the other strategies)."""
        def drained():
            audit = self.audit()
            holders = sum(batch["holders"] for batch in audit.get("reserved", {}).values())
            return audit if audit["coupons"] >= holders else None
        return wait_for(drained, timeout_s, f"the backlog to drain (logs in {self.folder})", interval_s=0.2)

    def codes(self) -> set:
        return Database(self.database_url, one_per_user=False).codes()


@pytest.fixture
def coupons(tmp_path):
    started = []

    def start(strategy: str, consumer_args: tuple = (), **env) -> Coupons:
        running = Coupons(tmp_path / f"{strategy}-{len(started)}", strategy, {k: str(v) for k, v in env.items()},
                          consumer_args)
        running.folder.mkdir()
        started.append(running)
        return running.start()

    yield start
    for running in started:
        running.stop()


def crowd(url: str, batch_id: int, users: int, *, concurrency: int = 32, patience_s: float = 0) -> list[tuple]:
    """Every user clicks twice at once; on a 503 or a refused connection the user retries for up
    to ``patience_s``. Returns every answer: (user, status, code or None)."""
    answers, lock = [], threading.Lock()

    def click(user):
        deadline = time.monotonic() + patience_s
        while True:
            try:
                status, body = post(f"{url}/batches/{batch_id}/claim", {"user": user}, timeout=5)
            except OSError:
                status, body = 0, {}
            if status not in (0, 503) or time.monotonic() > deadline:
                with lock:
                    answers.append((user, status, body.get("code")))
                return
            time.sleep(0.2)

    with ThreadPoolExecutor(concurrency) as pool:
        for n in range(users):
            pool.submit(click, f"user-{n}")
            pool.submit(click, f"user-{n}")
    return answers


def assert_never_oversold(audit: dict, answers: list, stock: int, codes: set) -> None:
    assert audit["oversold"] == 0 and audit["double_claims"] == 0, audit
    given = {(user, code) for user, status, code in answers if status in (200, 201)}
    assert len({user for user, _ in given}) == len(given), "a user was given two different codes"
    assert len(given) == audit["coupons"] == stock            # the stock was emptied, exactly
    assert {code for _, code in given} <= codes                # every success has its row
    assert not [a for a in answers if a[1] not in (200, 201, 409)], "only coupons and 'exhausted'"


def test_the_naive_strategy_oversells_under_concurrency(coupons):
    running = coupons("naive", RACE_WINDOW_MS=20)
    batch_id = running.batch(stock=20)
    crowd(running.url, batch_id, users=200)
    audit = running.audit()
    assert audit["oversold"] > 0, audit              # the read-check-write race, counted in raw rows
    assert audit["coupons"] > audit["batches"][str(batch_id)]["stock"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", ["atomic", "reservation"])
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_correct_strategies_never_oversell(coupons, request, strategy, database):
    env = {}
    if database == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_database_url")
    if strategy == "reservation":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    running = coupons(strategy, **env)
    batch_id = running.batch(stock=50)
    answers = crowd(running.url, batch_id, users=400)
    audit = running.wait_for_rows()
    assert_never_oversold(audit, answers, 50, running.codes())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_every_success_has_its_row_after_redis_and_the_consumer_are_killed(coupons, start_server, request, broker,
                                                                           tmp_path):
    with start_server("redis", str(tmp_path / "servers"), appendonly=True) as redis:
        broker_url = request.getfixturevalue("rabbitmq_url") if broker == "rabbitmq" else redis.url
        running = coupons("reservation", REDIS_URL=redis.url, BROKER_URL=broker_url, BROKER_VISIBILITY_TIMEOUT=2,
                          WRITE_RATE=300)
        batch_id = running.batch(stock=300)
        result = {}
        crowd_thread = threading.Thread(target=lambda: result.update(
            answers=crowd(running.url, batch_id, users=600, concurrency=16, patience_s=30)))
        crowd_thread.start()
        wait_for(lambda: running.audit()["coupons"] >= 30, 20, "the consumer to write its first rows")
        redis.kill()                   # SIGKILL: no clean shutdown, no last write
        running.consumer.kill()        # mid-row, holding unacknowledged messages
        time.sleep(1.0)
        redis.start()                  # the same port, the same append-only file
        running.consumer.start()
        crowd_thread.join(120)
        assert not crowd_thread.is_alive()
        try:
            audit = running.wait_for_rows(timeout_s=30)
        except TimeoutError:
            # kombu's Redis transport takes a message off its list, then records it unacknowledged:
            # Redis dying between the two commands loses the one in flight (see
            # test_message_queues_redis_redelivery.py). Redis still knows its holder: reconcile.
            audit = running.audit()
            missing = sum(batch["holders"] for batch in audit["reserved"].values()) - audit["coupons"]
            assert broker == "redis" and missing == 1, audit
            reconciled = subprocess.run([sys.executable, "-m", "demos.coupon_system.reconcile", "--republish"],
                                        env={**os.environ, **running.env}, capture_output=True, text=True, timeout=30)
            assert reconciled.returncode == 0 and json.loads(reconciled.stdout)["republished"] == 1, reconciled
            audit = running.wait_for_rows(timeout_s=30)
        answers = result["answers"]
        assert [a for a in answers if a[1] in (0, 503)] == [], "a user never got an answer"
        assert_never_oversold(audit, answers, 300, running.codes())
        assert audit["reserved"][str(batch_id)] == {"holders": 300, "left": 0}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_coupon_is_redeemed_exactly_once_under_concurrent_orders(coupons, request, database):
    env = {"DATABASE_URL": request.getfixturevalue("postgres_database_url")} if database == "postgres" else {}
    running = coupons("atomic", **env)
    batch_id = running.batch(stock=5)
    status, claimed = post(f"{running.url}/batches/{batch_id}/claim", {"user": "alice"})
    assert status == 201
    redeem = f"{running.url}/coupons/{claimed['code']}/redeem"
    orders = [f"order-{n % 8}" for n in range(48)]     # 8 orders racing, each sent 6 times (retries)
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda order: (order, *post(redeem, {"user": "alice", "order_id": order,
                                                                    "amount_cents": 3000})), orders))
    won = {order for order, status, _ in answers if status == 201}
    assert len(won) == 1, answers                                   # one order used it, once
    winner = won.pop()
    assert {status for order, status, _ in answers if order == winner} <= {200, 201}   # its retries: the same answer
    assert {body["discount_cents"] for order, status, body in answers if order == winner} == {1500}
    assert {status for order, status, _ in answers if order != winner} == {409}
    audit = running.audit()
    assert audit["redemptions"] == 1 and audit["double_redeems"] == 0, audit


@pytest.mark.parametrize("broker", ["rabbitmq", "filesystem"])
def test_a_consumer_killed_holding_a_row_loses_it_only_on_the_embedded_broker(coupons, request, redis_url, broker):
    """RabbitMQ delivers the unacknowledged message again; the embedded filesystem broker moved
    the file when the consumer took it, so the row of a coupon already answered 201 is lost:
    why the chapter's guarantee is claimed on a real broker."""
    broker_url = request.getfixturevalue("rabbitmq_url") if broker == "rabbitmq" else ""
    running = coupons("reservation", consumer_args=("--hold-before-write", "60"), REDIS_URL=redis_url,
                      BROKER_URL=broker_url)
    batch_id = running.batch(stock=5)
    status, claimed = post(f"{running.url}/batches/{batch_id}/claim", {"user": "alice"})
    assert status == 201
    wait_for(lambda: f"took {claimed['code']}" in running.consumer.log_path.read_text(), 10, "the consumer to take it")
    running.consumer.kill()                                   # SIGKILL while holding the message
    running.consumer.argv = running.consumer.argv[:-2]        # the same consumer, no longer holding
    running.consumer.start()
    if broker == "rabbitmq":
        wait_for(lambda: claimed["code"] in running.codes(), 10, "the redelivered row")
    else:
        time.sleep(2)                                         # every chance to show up: it cannot
        assert claimed["code"] not in running.codes()         # answered 201, and no row: lost
        assert running.audit()["reserved"][str(batch_id)]["holders"] == 1   # Redis still knows: reconcile
        reconciled = subprocess.run([sys.executable, "-m", "demos.coupon_system.reconcile", "--republish"],
                                    env={**os.environ, **running.env}, capture_output=True, text=True, timeout=30)
        assert reconciled.returncode == 0, reconciled.stderr
        assert json.loads(reconciled.stdout)["republished"] == 1
        wait_for(lambda: claimed["code"] in running.codes(), 10, "the republished row")


def test_a_dead_redis_gets_a_fast_503_and_takes_nothing(coupons, start_server, tmp_path):
    with start_server("redis", str(tmp_path / "servers"), appendonly=True) as redis:
        running = coupons("reservation", REDIS_URL=redis.url)
        batch_id = running.batch(stock=5)
        assert post(f"{running.url}/batches/{batch_id}/claim", {"user": "alice"})[0] == 201
        redis.kill()
        started = time.monotonic()
        status, body = post(f"{running.url}/batches/{batch_id}/claim", {"user": "bob"})
        assert status == 503 and "retry later" in body["error"] and time.monotonic() - started < 3
        redis.start()                                           # the same port and append-only file
        assert post(f"{running.url}/batches/{batch_id}/claim", {"user": "alice"})[0] == 200   # still hers
        assert post(f"{running.url}/batches/{batch_id}/claim", {"user": "bob"})[0] == 201
        assert running.wait_for_rows()["reserved"][str(batch_id)] == {"holders": 2, "left": 3}
