"""In-process view state and the SSE fan-out: what the naive design keeps in its one process.

Views come from the product's pure core (`merge` + `build_view`), so they are the same figures;
events are `backend.bus.events.symbol_updated`, fanned out through the product's bounded
`Subscriber` queues (drop-oldest), so GET /stream looks exactly like the product's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from backend.bus.events import symbol_updated
from backend.core.ticks import Tick
from backend.core.view import View, build_view
from backend.core.window import WindowState, merge
from tests.bench.baseline.subscriber import Subscriber
from tests.bench.baseline.window_store import SortedStore


@dataclass
class _Symbol:
    state: WindowState
    store: SortedStore = field(default_factory=SortedStore)


@dataclass
class Views:
    """Per-symbol window state. Only the event loop touches it, and `apply` never awaits."""

    stale_after_s: float
    symbols: dict[str, _Symbol] = field(default_factory=dict)
    subscribers: set[Subscriber] = field(default_factory=set)

    def apply(self, tick: Tick) -> View:
        """Merge one newly stored tick, rebuild its symbol's view and publish it."""
        sym = self.symbols.get(tick.symbol)
        if sym is None:
            sym = self.symbols[tick.symbol] = _Symbol(WindowState(symbol=tick.symbol))
        now_us = time.time_ns() // 1_000
        sym.state, delta, _ = merge(sym.state, sym.store, [tick], now_us)
        sym.store.apply(delta)
        view = build_view(sym.state, now_us, self.stale_after_s)
        assert view is not None  # the state holds at least this tick
        self.publish(symbol_updated(tick.symbol, view), tick.symbol)
        return view

    def publish(self, raw: bytes, symbol: str) -> None:
        for sub in list(self.subscribers):
            if sub.symbols is None or symbol in sub.symbols:
                sub.offer(raw)

    def subscribe(self, symbols: frozenset[str] | None) -> Subscriber:
        sub = Subscriber(symbols)
        self.subscribers.add(sub)
        return sub
