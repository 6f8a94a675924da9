"""The view W in Redis: its one guarded write (calc, calc-b and /internal/agg-update all use it)
and the reads of the symbols routes.

A write stores W, stamps the symbol in the symbols hash and appends `symbol.updated` to the
realtime ring, in one
script (`view_write.lua`) that refuses a view older than the stored one: an external writer, or a
slow calc, never moves a symbol's W backwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from backend.bus import events
from backend.bus.keys import Keys
from backend.bus.lua import queue_view_write, view_order
from backend.bus.realtime import Ring
from backend.core.view import View


def queue_write(
    pipe: Any,
    keys: Keys,
    ring: Ring,
    *,
    symbol: str,
    view: View | Mapping[str, Any],
    last_ts_us: int,
    last_event_id: str,
    now_us: int,
) -> None:
    """Queue the guarded write of `view` on `pipe` (sync or async, inside the caller's MULTI)."""
    encoded = events.view_json(view)
    queue_view_write(
        pipe,
        view_key=keys.view(symbol),
        symbols_key=keys.symbols,
        order_key=keys.view_order,
        symbol=symbol,
        order=view_order(last_ts_us, last_event_id),
        view_json=encoded,
        now_us=now_us,
        ring_key=ring.key,
        ring_cap=ring.max_events,
        event=events.symbol_updated(symbol, view, encoded),
    )


class ViewStore:
    """Async access to the views, for the API."""

    def __init__(self, redis: Redis, keys: Keys, ring: Ring) -> None:
        self._redis = redis
        self._keys = keys
        self._ring = ring

    async def write(
        self,
        *,
        symbol: str,
        view: View | Mapping[str, Any],
        last_ts_us: int,
        last_event_id: str,
        now_us: int,
    ) -> bool:
        """Store and publish `view`; False if a newer view was already stored (nothing changed)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            queue_write(
                pipe, self._keys, self._ring, symbol=symbol, view=view,
                last_ts_us=last_ts_us, last_event_id=last_event_id, now_us=now_us,
            )  # fmt: skip
            (written,) = await pipe.execute()
        return bool(written)

    async def symbols_with_views(self) -> list[tuple[str, bytes | None]]:
        """Every known symbol, sorted, with its stored view (None if it has none)."""
        symbols = sorted(s.decode() for s in await self._redis.hkeys(self._keys.symbols))
        if not symbols:
            return []
        views = await self._redis.mget([self._keys.view(s) for s in symbols])
        return list(zip(symbols, views, strict=True))

    async def view(self, symbol: str) -> bytes | None:
        return await self._redis.get(self._keys.view(symbol))

    async def state(self, symbol: str) -> bytes | None:
        """calc's stored window state of `symbol` (its gaps, for /gaps)."""
        return await self._redis.get(self._keys.state(symbol))
