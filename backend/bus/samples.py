"""Pipeline samples and rejection counts in Redis: the stats sampler's and /stats/history's I/O.

One sample per slot across every API replica: the replica whose `SET NX EX` on the slot's marker
succeeds writes it. Samples are kept in a capped stream, as the JSON the sampler wrote, so a
history read can splice them without decoding.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from backend.bus.keys import Keys
from backend.bus.stats import REJECTED_PREFIX


class SamplesStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def claim_slot(self, slot: int, *, ttl_s: int) -> bool:
        """True if this caller is the first to claim `slot` (the marker lives `ttl_s`)."""
        return bool(await self._redis.set(self._keys.stats_slot(slot), b"1", nx=True, ex=ttl_s))

    async def append(self, sample_json: bytes, *, slot: int, maxlen: int) -> None:
        await self._redis.xadd(
            self._keys.stats_samples,
            {"s": sample_json, "slot": slot},
            maxlen=maxlen,
            approximate=True,
        )

    async def since(self, since_ms: int) -> list[bytes]:
        """The samples (JSON) written at or after `since_ms`, oldest first."""
        entries = await self._redis.xrange(self._keys.stats_samples, min=since_ms, max="+")
        return [fields[b"s"] for _, fields in entries if b"s" in fields]

    async def add_rejections(self, counts: Mapping[str, int]) -> None:
        """Add rejected-tick counts (by reason) to the stats hash, all or nothing (one MULTI)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for reason, count in counts.items():
                pipe.hincrby(self._keys.stats, REJECTED_PREFIX + reason, count)
            await pipe.execute()
