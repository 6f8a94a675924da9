"""Read the outbox without consuming it: the ticks accepted but not yet (known to be) in Postgres.

Used to make the current candle live. Entries can be committed but not yet deleted, so callers
must drop the event_ids Postgres already has.
"""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from backend.bus.keys import Keys
from backend.core.ticks import Tick, decode_tick

MAX_LIVE_ENTRIES = 2_000


async def pending_ticks(
    redis: Redis, keys: Keys, symbol: str, from_us: int, to_us: int
) -> tuple[list[Tick], bool]:
    """Outbox ticks of `symbol` with ts in [from, to), and whether the whole outbox was read."""
    entries = await redis.xrange(keys.outbox, count=MAX_LIVE_ENTRIES + 1)
    complete = len(entries) <= MAX_LIVE_ENTRIES
    ticks: dict[str, Tick] = {}
    for _entry_id, fields in entries[:MAX_LIVE_ENTRIES]:
        for raw in orjson.loads(fields[b"t"]):
            tick = decode_tick(raw)
            if tick.symbol == symbol and from_us <= tick.ts_us < to_us:
                ticks.setdefault(tick.event_id, tick)
    return list(ticks.values()), complete


class OutboxReader:
    """`pending_ticks` bound to one client and namespace (the candles route's gateway)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def pending_ticks(self, symbol: str, from_us: int, to_us: int) -> tuple[list[Tick], bool]:
        return await pending_ticks(self._redis, self._keys, symbol, from_us, to_us)
