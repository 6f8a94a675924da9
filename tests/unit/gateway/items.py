"""Queue items and ring entries for the gateway's unit tests."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from backend.bus.realtime import Entry
from backend.core.stream_ids import StreamId, format_id


@dataclass
class Item:
    """What `ClientQueue` holds: an id, its text, a type and a symbol."""

    id: StreamId | None
    id_text: str | None
    type: str
    symbol: str | None


def view(n: int, symbol: str) -> Item:
    return Item((n, 0), f"{n}-0", "symbol.updated", symbol)


def tick(n: int, symbol: str = "T") -> Item:
    return Item((n, 0), f"{n}-0", "tick.received", symbol)


def pinned(n: int | None, kind: str = "snapshot") -> Item:
    return Item((n, 0) if n is not None else None, f"{n}-0" if n is not None else None, kind, None)


def entry(n: int, kind: str, symbol: str | None, payload: dict[str, object]) -> Entry:
    return Entry((n, 0), format_id((n, 0)), kind, symbol, orjson.dumps(payload))


def view_entry(n: int, symbol: str, price: float) -> Entry:
    body = {"type": "symbol.updated", "symbol": symbol, "ts": "x", "view": {"last_price": price}}
    return entry(n, "symbol.updated", symbol, body)


def tick_entry(n: int, symbol: str) -> Entry:
    return entry(n, "tick.received", symbol, {"type": "tick.received", "symbol": symbol, "n": n})
