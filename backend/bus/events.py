"""Events on the `realtime:updates` pub/sub channel: their shape, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from backend.bus.ingest import Outcome, Status
from backend.core.ticks import Tick, us_to_iso


def symbol_updated(symbol: str, view: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"type": "symbol.updated", "symbol": symbol, "ts": view["last_ts"], "view": view}
    )


def ticks_received(ticks: Sequence[Tick], outcomes: Sequence[Outcome]) -> list[bytes]:
    """One `tick.received` event per symbol per batch: its latest new tick and how many came.

    Coalescing keeps the fast path cheap at tens of thousands of ticks/s while a batch of one
    (the usual case at low rates) is exactly one event per tick.
    """
    latest: dict[str, Tick] = {}
    counts: dict[str, int] = {}
    for tick, outcome in zip(ticks, outcomes, strict=True):
        if outcome.status is not Status.ACCEPTED:
            continue
        counts[tick.symbol] = counts.get(tick.symbol, 0) + 1
        best = latest.get(tick.symbol)
        if best is None or tick.order_key() > best.order_key():
            latest[tick.symbol] = tick
    return [
        orjson.dumps(
            {
                "type": "tick.received",
                "symbol": tick.symbol,
                "ts": us_to_iso(tick.ts_us),
                "price": tick.price,
                "volume": tick.volume,
                "source": tick.source,
                "event_id": tick.event_id,
                "count": counts[symbol],
            }
        )
        for symbol, tick in latest.items()
    ]


def decode(raw: bytes | str) -> dict[str, Any]:
    event = orjson.loads(raw)
    if not isinstance(event, dict) or "type" not in event:
        raise ValueError("not a realtime event")
    return event
