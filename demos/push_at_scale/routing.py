"""The routing table: which gateway holds which device, readable by every API process.

- ``REDIS_URL`` set: a Redis hash ``<namespace>:routes`` (device -> gateway) and a sorted set
  ``<namespace>:gateways`` (gateway -> when it last said it was alive), so API processes on
  several machines share it.
- unset: the same two tables in the store's database (``store``): its SQLite file is enough for
  every process of one machine, its PostgreSQL database (``DATABASE_URL``) for several machines.

A gateway sets a device's route when the device connects, before it reads what the device missed
(so a message stored after that read is routed to it), and clears it on disconnect only if the
route still names it (the device may already be on another gateway). A stale route costs nothing:
the message is stored, the dead gateway's queue goes nowhere, and the device reads it on reconnect.
"""
import os
import time

from .store import Store

GATEWAY_TTL_S = 5.0      # a gateway that has not said it is alive for this long gets no topic messages
CLEAR_IF_MINE = "if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('hdel', KEYS[1], ARGV[1]) end return 0"


class StoreRoutes:
    def __init__(self, store: Store):
        self.store = store

    def set(self, device: str, gateway: str) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO push_routes VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET gateway = excluded.gateway",
                       (device, gateway))

    def clear(self, devices: list[str], gateway: str) -> None:
        with self.store.transaction() as db:   # rows in sorted order: never a deadlock with another gateway
            db.executemany("DELETE FROM push_routes WHERE device = ? AND gateway = ?",
                           [(device, gateway) for device in sorted(set(devices))])

    def lookup(self, devices: list[str]) -> dict:
        return dict(self.store.select_in("SELECT device, gateway FROM push_routes WHERE device IN ({})", devices))

    def alive(self, gateway: str) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO push_gateways VALUES (?, ?) ON CONFLICT (gateway) DO UPDATE SET seen = excluded.seen",
                       (gateway, time.time()))

    def gateways(self) -> list[str]:
        return [row[0] for row in self.store.autocommit().execute("SELECT gateway FROM push_gateways WHERE seen >= ? ORDER BY gateway",
                                                          (time.time() - GATEWAY_TTL_S,))]


class RedisRoutes:
    def __init__(self, redis_url: str, namespace: str):
        import redis
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
        self.routes, self.live = f"{namespace}:routes", f"{namespace}:gateways"
        self.clear_if_mine = self.redis.register_script(CLEAR_IF_MINE)

    def set(self, device: str, gateway: str) -> None:
        self.redis.hset(self.routes, device, gateway)

    def clear(self, devices: list[str], gateway: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for device in devices:
            self.clear_if_mine(keys=[self.routes], args=[device, gateway], client=pipe)
        pipe.execute()

    def lookup(self, devices: list[str]) -> dict:
        values = self.redis.hmget(self.routes, devices) if devices else []
        return {device: gateway for device, gateway in zip(devices, values) if gateway}

    def alive(self, gateway: str) -> None:
        self.redis.zadd(self.live, {gateway: time.time()})

    def gateways(self) -> list[str]:
        return sorted(self.redis.zrangebyscore(self.live, time.time() - GATEWAY_TTL_S, "+inf"))


def routes_for(store: Store):
    """Redis when ``REDIS_URL`` is set (namespace ``PUSH_NAMESPACE``, ``push`` by default), else the store."""
    url = os.environ.get("REDIS_URL")
    return RedisRoutes(url, os.environ.get("PUSH_NAMESPACE", "push")) if url else StoreRoutes(store)
