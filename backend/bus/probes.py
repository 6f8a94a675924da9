"""What the readiness probe asks Redis: is it there, are workers beating, how deep is the queue."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from backend.bus.keys import Keys


@dataclass(frozen=True, slots=True)
class BrokerHealth:
    workers: int  # worker processes with a heartbeat within the timeout
    queue_depth: int  # messages waiting in the calc queue


class Probes:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def check_redis(self) -> None:
        """Raises if Redis does not answer."""
        await self._redis.ping()

    async def broker(self, *, heartbeat_timeout_ms: int, now_ms: float) -> BrokerHealth:
        horizon_ms = now_ms - heartbeat_timeout_ms
        workers = await self._redis.zcount(self._keys.heartbeats, horizon_ms, "+inf")
        depth = await self._redis.llen(self._keys.queue_list())
        return BrokerHealth(workers=int(workers), queue_depth=int(depth))
