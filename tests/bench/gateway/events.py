"""What the publisher appends: realistic bus events, built once and reused.

Mostly `symbol.updated` with a whole view (built by the product's `symbol_updated` from a real
`View`, so each is the size calc publishes), plus `tick.received`, spread evenly over the
symbols. Payloads are pre-built (a few per symbol): the publisher's own CPU must not limit it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

from backend.bus.events import symbol_updated
from backend.bus.realtime import Outgoing
from backend.core.events import SYMBOL_UPDATED, TICK_RECEIVED
from tests.support.builders import make_last_tick, make_tick_received, make_view

VARIANTS = 4  # distinct payloads per symbol and type


def symbol_names(count: int) -> list[str]:
    return [f"S{i:03d}USD" for i in range(count)]


def _views(symbol: str, now: datetime) -> list[Outgoing]:
    out = []
    for n in range(VARIANTS):
        price = 100.0 + n
        last_10 = tuple(
            make_last_tick(price=price + i * 0.01, event_id=f"e-{symbol}-{n}-{i}")
            for i in range(10)
        )
        view = make_view(symbol, now=now, last_price=price, ticks_total=1_000 + n, last_10=last_10)
        out.append(Outgoing(SYMBOL_UPDATED, symbol, symbol_updated(symbol, view)))
    return out


def _ticks(symbol: str) -> list[Outgoing]:
    out = []
    for n in range(VARIANTS):
        event = make_tick_received(symbol, price=100.0 + n, event_id=f"bench-{symbol}-{n}")
        out.append(Outgoing(TICK_RECEIVED, symbol, event.model_dump_json().encode()))
    return out


def event_stream(symbols: list[str], tick_share: float) -> Iterator[Outgoing]:
    """An endless round-robin over the symbols; every 1/tick_share-th event a tick.received."""
    now = datetime.now(UTC)
    views = {s: itertools.cycle(_views(s, now)) for s in symbols}
    ticks = {s: itertools.cycle(_ticks(s)) for s in symbols}
    every = round(1 / tick_share) if tick_share > 0 else 0
    for n, symbol in enumerate(itertools.cycle(symbols)):
        lap = n // len(symbols)  # shifts which symbols get the ticks, lap after lap
        source = ticks if every and (n + lap) % every == 0 else views
        yield next(source[symbol])
