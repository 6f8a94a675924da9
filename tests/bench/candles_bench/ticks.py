"""Synthetic ticks with real-world shapes, generated in chunks with numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tests.bench.candles_bench.queries import DAY_US

# Start price, decimals (tick size), median trade size: rough real-world magnitudes.
_INSTRUMENTS = {
    "BTCUSDT": (64_000.0, 2, 0.02),
    "ETHUSDT": (3_400.0, 2, 0.3),
    "XAUUSD": (2_400.0, 2, 1.0),
    "EURUSD": (1.08, 5, 10_000.0),
    "AAPL": (190.0, 2, 50.0),
}
_OTHER = (100.0, 2, 10.0)
DAILY_VOLATILITY = 0.03


class TickGenerator:
    """Ticks in event-time order, in chunks, deterministic for a seed.

    Poisson arrivals at a constant rate over the span with millisecond timestamps (as exchanges
    send them, so same-ms ties happen and the (ts, event_id) tie-break is exercised), a random
    walk per symbol (~3 %/day), log-normal trade sizes, and feeder-shaped unique event_ids
    (`run-source-symbol-seq`, seq zero-padded so the primary key grows at its right edges like
    exchange trade ids; random UUIDs would only slow the load, not the reads).
    """

    def __init__(
        self,
        symbols: Sequence[str],
        sources: Sequence[str],
        total: int,
        start_us: int,
        span_us: int,
        seed: int,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.total, self.start_us, self.span_us = total, start_us, span_us
        self.symbols = list(symbols)
        self.n_sources = len(sources)
        spec = [_INSTRUMENTS.get(s, _OTHER) for s in symbols]
        self.log_price = np.log([p for p, _, _ in spec])
        self.decimals = [d for _, d, _ in spec]
        self.log_size = np.log([v for _, _, v in spec])
        per_symbol_per_day = total / len(symbols) / (span_us / DAY_US)
        self.sigma = DAILY_VOLATILITY / max(per_symbol_per_day, 1.0) ** 0.5
        self.symbol_bytes = np.array([s.encode() for s in symbols], dtype=np.bytes_)
        self.source_bytes = np.array([s.encode() for s in sources], dtype=np.bytes_)
        run = f"bench{seed}"
        self.prefixes = np.array(
            [f"{run}-{src}-{sym}-".encode() for sym in symbols for src in sources],
            dtype=np.bytes_,
        )
        self.next_seq = np.zeros(len(symbols) * len(sources), np.int64)

    def time_at(self, row: int) -> int:
        """Where row `row` falls in event time (µs, ms-aligned): rows spread evenly."""
        return (self.start_us + self.span_us * row // self.total) // 1000 * 1000

    def columns(self, lo: int, hi: int) -> list[tuple[str, np.ndarray]]:
        """Rows [lo, hi) as (PostgreSQL type, values) in md_ticks' COPY column order."""
        n = hi - lo
        rng = self.rng
        t0, t1 = self.time_at(lo) // 1000, self.time_at(hi) // 1000
        ts = np.sort(rng.integers(t0, max(t1, t0 + 1), n)) * 1000
        sym = rng.integers(0, len(self.symbols), n)
        src = rng.integers(0, self.n_sources, n)
        price = np.empty(n)
        volume = np.empty(n)
        for i in range(len(self.symbols)):
            mask = sym == i
            count = int(mask.sum())
            if count == 0:
                continue
            walk = self.log_price[i] + np.cumsum(rng.normal(0.0, self.sigma, count))
            self.log_price[i] = walk[-1]
            price[mask] = np.round(np.exp(walk), self.decimals[i])
            sizes = rng.lognormal(self.log_size[i], 1.0, count)
            volume[mask] = np.maximum(np.round(sizes, 6), 1e-6)
        combo = sym * self.n_sources + src
        seq = np.empty(n, np.int64)
        for c in range(len(self.next_seq)):
            mask = combo == c
            count = int(mask.sum())
            seq[mask] = self.next_seq[c] + np.arange(1, count + 1)
            self.next_seq[c] += count
        event_id = np.char.add(self.prefixes[combo], np.char.zfill(seq.astype(np.bytes_), 9))
        received = ts + rng.integers(200, 50_000, n)  # 0.2-50 ms of transport
        return [
            ("text", event_id),
            ("text", self.symbol_bytes[sym]),
            ("timestamptz", ts),
            ("float8", price),
            ("float8", volume),
            ("text", self.source_bytes[src]),
            ("int8", seq),
            ("timestamptz", received),
        ]
