"""The reservation strategy: Redis decides, the database follows at its own pace.

One Lua script (atomic in Redis) checks the user's claim and the batch's stock together and
takes one; the coupon's row goes to the queue, and consumer.py writes the rows at a steady rate,
so the database never sees the crowd. A claim is answered 201 only once Redis has granted it
and the broker holds its row's message; a retry (the user holds one already) publishes the row
again, which the consumer writes at most once (unique index), so even a reservation whose first
publish died with the service gets its row. If the publish fails, the reservation is released
and the client gets a 503.

Redis must keep what it granted across a crash: run it with its append-only file
(``python -m load.servers redis --appendonly``). Both keys of a batch share the hash tag
``{database:batch}``, so on Redis Cluster a batch lives on one shard and the script stays atomic.
Run: REDIS_URL=redis://127.0.0.1:PORT/0 python -m demos.coupon_system.reservation --port 8000
(and python -m demos.coupon_system.consumer beside it)
"""
import time

from demos.brokers import BrokerUnavailable

from .app import Services, Strategy, Unavailable, serve
from .queue import Queue
from .store import Batch, Conflict, new_code

RESERVE = """
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then return {1, held} end
local left = redis.call('GET', KEYS[1])
if not left then return {-1, ''} end
if tonumber(left) <= 0 then return {0, ''} end
redis.call('DECR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {2, ARGV[2]}
"""
RELEASE = """
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('INCR', KEYS[1])
  return 1
end
return 0
"""
HELD, UNKNOWN, EXHAUSTED, GRANTED = 1, -1, 0, 2


def keys(namespace: str, batch_id: int) -> list[str]:
    """A batch's stock and holders; ``namespace`` is the database's own id, so two databases
    sharing one Redis never share a batch's keys."""
    return [f"coupon:{{{namespace}:{batch_id}}}:left", f"coupon:{{{namespace}:{batch_id}}}:holders"]


class Reservations:
    """The batches' stock and holders in Redis (``REDIS_URL``)."""

    def __init__(self, redis_url: str, namespace: str):
        import redis
        self.namespace = namespace
        if not redis_url:
            raise Unavailable("the reservation strategy needs Redis: set REDIS_URL (start one with "
                              "`python -m load.servers redis --appendonly`, which prints it)")
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
        self.errors = (redis.RedisError, OSError)
        self._reserve, self._release = self.client.register_script(RESERVE), self.client.register_script(RELEASE)
        try:
            self.client.ping()
        except self.errors as error:
            raise Unavailable(f"Redis not reachable at {redis_url}: start it with `python -m load.servers "
                              f"redis --appendonly` or `redis-server --appendonly yes` ({error})") from error

    def seed(self, batch_id: int, left: int) -> None:
        """Put a batch's stock in Redis unless it is there (a restart must not refill it)."""
        self.client.set(keys(self.namespace, batch_id)[0], left, nx=True)

    def reserve(self, batch_id: int, user_id: str, code: str) -> tuple[int, str]:
        try:
            status, held = self._reserve(keys=keys(self.namespace, batch_id), args=[user_id, code])
        except self.errors as error:
            raise Unavailable(f"Redis is not answering, nothing was taken: retry later ({error})") from error
        return int(status), held.decode() if isinstance(held, bytes) else held

    def release(self, batch_id: int, user_id: str, code: str) -> None:
        try:
            self._release(keys=keys(self.namespace, batch_id), args=[user_id, code])
        except self.errors:
            pass   # Redis is gone too: the reservation stays, reconcile finds it without a row

    def reserved(self, batch_ids: list[int]) -> dict:
        """Per batch: how many users hold a reservation, and the stock left in Redis."""
        try:
            return {str(b): {"holders": self.client.hlen(keys(self.namespace, b)[1]),
                             "left": int(self.client.get(keys(self.namespace, b)[0]) or 0)} for b in batch_ids}
        except self.errors as error:
            return {"error": str(error)}

    def holders(self, batch_id: int) -> dict[str, str]:
        return {user.decode(): code.decode() for user, code in self.client.hgetall(keys(self.namespace, batch_id)[1]).items()}


def setup(services: Services) -> None:
    services.reservations = Reservations(services.settings.redis_url, services.database.instance)
    services.queue = Queue.connect(services.settings)
    for batch_id in services.database.batch_ids():   # batches created before a restart of Redis
        batch = services.database.batch(batch_id)
        services.reservations.seed(batch_id, batch.stock - services.database.issued(batch_id))


def batch_created(services: Services, batch: Batch) -> None:
    with services.timings.spent("redis"):
        services.reservations.seed(batch.id, batch.stock)


def claim(services: Services, batch: Batch, user: str) -> tuple[str, bool]:
    with services.timings.spent("redis"):
        status, code = services.reservations.reserve(batch.id, user, new_code())
        if status == UNKNOWN:   # Redis lost the batch (started without its data): never refill blindly
            raise Unavailable(f"batch {batch.id} is not in Redis: restart the service to seed it from the database")
    if status == EXHAUSTED:
        raise Conflict(f"batch {batch.id} is exhausted")
    try:
        with services.timings.spent("broker"):
            services.queue.publish_row(batch.id, user, code, time.time())
    except BrokerUnavailable:
        if status == GRANTED:
            with services.timings.spent("redis"):
                services.reservations.release(batch.id, user, code)
        raise
    return code, status == GRANTED


STRATEGY = Strategy("reservation", claim, one_per_user=True, setup=setup, batch_created=batch_created)

if __name__ == "__main__":
    serve(STRATEGY, __doc__)
