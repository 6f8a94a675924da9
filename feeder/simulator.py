"""A seeded, pure price process that produces tick payloads for the ingest API.

Pure: randomness comes from the `random.Random` passed in and time from the `now_ms` passed to
`next_tick`, so a SEED reproduces a run tick for tick and tests need no clock or network.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Realistic starting levels, so charts and aggregates look like the markets they name.
START_LEVELS: dict[str, float] = {
    "BTCUSDT": 60_000.0,
    "ETHUSDT": 3_000.0,
    "XAUUSD": 2_400.0,
    "EURUSD": 1.08,
    "AAPL": 190.0,
}
DEFAULT_LEVEL = 100.0

# Per-tick standard deviation of the log-return: small, so consecutive ticks look like a market.
STEP_VOLATILITY = 2e-4
# A very weak pull back towards the starting level, so a soak run of days does not wander off to
# absurd prices (the later GBM process replaces this walk).
MEAN_REVERSION = 1e-4
# Typical notional of one trade; volumes are log-normal around NOTIONAL / price.
NOTIONAL = 5_000.0
VOLUME_SIGMA = 1.0


def price_decimals(price: float) -> int:
    """Decimals a quote at this level is shown with (FX 5, stocks and crypto 2)."""
    if price >= 100:
        return 2
    if price >= 10:
        return 3
    if price >= 1:
        return 5
    # Below 1: keep about 5 significant digits.
    return min(12, 4 - math.floor(math.log10(price)))


def round_price(price: float) -> float:
    """`price` rounded to its level's precision, never rounded down to zero."""
    decimals = price_decimals(price)
    return max(round(price, decimals), 10.0**-decimals)


def round_volume(volume: float) -> float:
    """Whole units for large sizes, fractions for small ones (e.g. 0.0834 BTC)."""
    if volume >= 100:
        return float(round(volume))
    if volume >= 1:
        return round(volume, 2)
    return max(round(volume, 6), 1e-6)


@dataclass
class _Walk:
    """The state of one symbol's price process."""

    anchor_log: float
    log_price: float
    volume_mu: float


class Simulator:
    """Round-robin ticks over symbols (and, per full symbol cycle, over sources).

    Every symbol has one price walk that all sources quote. Event ids are
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
        volatility: float = STEP_VOLATILITY,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if not sources:
            raise ValueError("at least one source is needed")
        self.symbols = list(symbols)
        self.sources = list(sources)
        self.rng = rng
        self.volatility = volatility
        self.run_id = run_id if run_id is not None else f"{rng.getrandbits(32):08x}"
        self._walks = {symbol: self._new_walk(symbol) for symbol in self.symbols}
        self._seq: dict[tuple[str, str], int] = {}
        self._index = 0

    @staticmethod
    def _new_walk(symbol: str) -> _Walk:
        level = START_LEVELS.get(symbol, DEFAULT_LEVEL)
        anchor = math.log(level)
        return _Walk(anchor_log=anchor, log_price=anchor, volume_mu=math.log(NOTIONAL / level))

    @property
    def ticks_emitted(self) -> int:
        return self._index

    def price(self, symbol: str) -> float:
        """The current (unrounded) price of `symbol`."""
        return math.exp(self._walks[symbol].log_price)

    def _step(self, walk: _Walk) -> None:
        pull = -MEAN_REVERSION * (walk.log_price - walk.anchor_log)
        walk.log_price += pull + self.rng.gauss(0.0, self.volatility)

    def next_tick(self, now_ms: int) -> dict[str, Any]:
        """The next tick as a JSON-ready API payload stamped with event time `now_ms`."""
        n_symbols = len(self.symbols)
        symbol = self.symbols[self._index % n_symbols]
        source = self.sources[(self._index // n_symbols) % len(self.sources)]
        self._index += 1

        walk = self._walks[symbol]
        self._step(walk)
        volume = self.rng.lognormvariate(walk.volume_mu, VOLUME_SIGMA)

        key = (source, symbol)
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        return {
            "symbol": symbol,
            "price": round_price(math.exp(walk.log_price)),
            "volume": round_volume(volume),
            "source": source,
            "ts": int(now_ms),
            "event_id": f"{self.run_id}-{source}-{symbol}-{seq}",
            "seq": seq,
        }
