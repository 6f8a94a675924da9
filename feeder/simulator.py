"""Clean ticks: which (source, symbol) comes next, its seq, its event_id and its price.

Pure: randomness comes from the `random.Random` passed in and time from the `now_ms` passed to
`next_tick`, so a SEED and a clock reproduce a run tick for tick and tests need neither.
The faults a real feed has (duplicates, late and lost ticks, garbage) are layered on top by
`feeder.faults`, so this stream stays the ground truth they are measured against.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from feeder.prices import START_LEVELS, Market, round_price, round_volume

__all__ = ["START_LEVELS", "Simulator", "round_price", "round_volume"]


class Simulator:
    """Round-robin ticks over symbols (and, per full symbol cycle, over sources).

    All sources quote one shared mid per symbol (`feeder.prices.Market`), each slightly
    differently. `seq` counts per (source, symbol) from 1. Event ids are
    `{run_id}-{source}-{symbol}-{seq}`; `run_id` is drawn from `rng` unless given, so a fixed
    seed reproduces the ids too.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        sources: Sequence[str],
        rng: random.Random,
        *,
        run_id: str | None = None,
        market: Market | None = None,
    ) -> None:
        self.rng = rng
        self.run_id = run_id if run_id is not None else f"{rng.getrandbits(32):08x}"
        self.market = market if market is not None else Market(rng)
        self.symbols: list[str] = []
        self.sources: list[str] = []
        self.set_universe(symbols, sources)
        self._seq: dict[tuple[str, str], int] = {}
        self._index = 0

    def set_universe(self, symbols: Sequence[str], sources: Sequence[str]) -> None:
        """Change what is quoted. Seqs and prices of symbols seen before carry on, so a symbol
        that comes back neither restarts its seq (no false gap) nor jumps in price."""
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if not sources:
            raise ValueError("at least one source is needed")
        self.symbols = list(symbols)
        self.sources = list(sources)

    @property
    def ticks_emitted(self) -> int:
        return self._index

    def price(self, symbol: str) -> float:
        """The current (unrounded) mid of `symbol`."""
        return self.market.mid(symbol)

    def last_seq(self, source: str, symbol: str) -> int:
        """The last seq handed out for (source, symbol); 0 before the first."""
        return self._seq.get((source, symbol), 0)

    def next_pair(self) -> tuple[str, str]:
        """The (source, symbol) the next tick will be for, advancing the round robin."""
        n_symbols = len(self.symbols)
        symbol = self.symbols[self._index % n_symbols]
        source = self.sources[(self._index // n_symbols) % len(self.sources)]
        self._index += 1
        return source, symbol

    def next_tick(self, now_ms: int) -> dict[str, Any]:
        """The next tick as a JSON-ready API payload stamped with event time `now_ms`."""
        source, symbol = self.next_pair()
        price = self.market.quote(source, symbol, now_ms)
        volume = self.market.volume(symbol)
        key = (source, symbol)
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        return {
            "symbol": symbol,
            "price": price,
            "volume": volume,
            "source": source,
            "ts": int(now_ms),
            "event_id": f"{self.run_id}-{source}-{symbol}-{seq}",
            "seq": seq,
        }
