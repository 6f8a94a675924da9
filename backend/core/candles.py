"""OHLCV candles on event time, exact and independent of arrival order.

A candle's bucket is `floor(ts / interval)` (UTC-aligned). Open is the earliest tick by
(ts, event_id), close the latest; volume and notional are summed as exact decimals of each
float's shortest representation (what PostgreSQL's `float8::text::numeric` gives), so a candle
assembled from any split of its ticks — rollup rows, live ticks, late ticks — is identical.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import ConfigDict, Field

from backend.core.contract import Contract
from backend.core.ticks import Tick, us_to_iso
from backend.core.timestamps import IsoTime

INTERVALS_S = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
Interval = Literal["1m", "5m", "15m", "1h"]
# Exact sums need room: two 17-digit factors, exponents bounded by validation (1e-12..1e15),
# millions of terms. Inexact is trapped: a rounding here would be a bug, never silent.
_EXACT = decimal.Context(
    prec=200, traps=[decimal.Inexact, decimal.Overflow, decimal.InvalidOperation]
)
_VWAP = decimal.Context(prec=34)


def exact(value: float) -> Decimal:
    return Decimal(repr(value))


def bucket_start(ts_us: int, width_us: int) -> int:
    return ts_us - ts_us % width_us


@dataclass(frozen=True, slots=True)
class Candle:
    bucket_us: int
    open_key: tuple[int, str]
    open_price: float
    high: float
    low: float
    close_key: tuple[int, str]
    close_price: float
    volume: Decimal
    notional: Decimal
    trades: int

    @classmethod
    def of_tick(cls, tick: Tick, width_us: int) -> Candle:
        key = tick.order_key()
        return cls(
            bucket_us=bucket_start(tick.ts_us, width_us),
            open_key=key,
            open_price=tick.price,
            high=tick.price,
            low=tick.price,
            close_key=key,
            close_price=tick.price,
            volume=exact(tick.volume),
            notional=_EXACT.multiply(exact(tick.price), exact(tick.volume)),
            trades=1,
        )

    def rebucket(self, width_us: int) -> Candle:
        return _replace_bucket(self, bucket_start(self.bucket_us, width_us))

    def to_record(self) -> bytes:
        """The stored form (a replay's candle hash): every field, sums as exact decimals."""
        return orjson.dumps(
            [
                self.bucket_us, list(self.open_key), self.open_price, self.high, self.low,
                list(self.close_key), self.close_price, str(self.volume), str(self.notional),
                self.trades,
            ]
        )  # fmt: skip

    @classmethod
    def from_record(cls, raw: bytes | str) -> Candle:
        bucket, open_key, open_price, high, low, close_key, close_price, vol, notional, n = (
            orjson.loads(raw)
        )
        return cls(
            int(bucket), (int(open_key[0]), open_key[1]), float(open_price), float(high),
            float(low), (int(close_key[0]), close_key[1]), float(close_price), Decimal(vol),
            Decimal(notional), int(n),
        )  # fmt: skip

    def to_bar(self) -> CandleBar:
        """The candle as the API sends it."""
        return CandleBar.model_validate(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """`CandleBar`'s JSON shape, built directly (cheap for thousands of candles)."""
        vwap = float(_VWAP.divide(self.notional, self.volume)) if self.volume > 0 else None
        return {
            "ts": us_to_iso(self.bucket_us),
            "open": self.open_price,
            "high": self.high,
            "low": self.low,
            "close": self.close_price,
            "volume": float(self.volume),
            "trades": self.trades,
            "vwap": vwap,
        }


class CandleBar(Contract):
    """One OHLCV candle of `GET /symbols/{symbol}/candles`; `ts` is its bucket's start."""

    ts: IsoTime
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    vwap: float | None = Field(description="Volume-weighted price; null when volume is 0")


class CandlesLive(Contract):
    """How much of the answer came from ticks not yet in PostgreSQL."""

    pending_ticks_included: int
    complete: bool = Field(description="False when the outbox could not be read in full")


class CandlesResponse(Contract):
    """`GET /symbols/{symbol}/candles`: candles oldest first over [from, to)."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    symbol: str
    interval: Interval
    from_: IsoTime = Field(alias="from")
    to: IsoTime
    candles: list[CandleBar]
    live: CandlesLive


def _replace_bucket(c: Candle, bucket_us: int) -> Candle:
    return Candle(
        bucket_us, c.open_key, c.open_price, c.high, c.low, c.close_key, c.close_price,
        c.volume, c.notional, c.trades,
    )  # fmt: skip


def merge(a: Candle, b: Candle) -> Candle:
    """The candle of the union of two disjoint tick sets of the same bucket."""
    if a.bucket_us != b.bucket_us:
        raise ValueError("cannot merge candles of different buckets")
    first = a if a.open_key <= b.open_key else b
    last = a if a.close_key >= b.close_key else b
    return Candle(
        bucket_us=a.bucket_us,
        open_key=first.open_key,
        open_price=first.open_price,
        high=max(a.high, b.high),
        low=min(a.low, b.low),
        close_key=last.close_key,
        close_price=last.close_price,
        volume=_EXACT.add(a.volume, b.volume),
        notional=_EXACT.add(a.notional, b.notional),
        trades=a.trades + b.trades,
    )


def combine(candles: Iterable[Candle], width_us: int) -> dict[int, Candle]:
    """Candles (of finer, aligned buckets, or single ticks) merged into `width_us` buckets."""
    out: dict[int, Candle] = {}
    for candle in candles:
        c = candle.rebucket(width_us)
        held = out.get(c.bucket_us)
        out[c.bucket_us] = c if held is None else merge(held, c)
    return out


def from_ticks(ticks: Iterable[Tick], width_us: int) -> dict[int, Candle]:
    """Candles of a set of ticks (unique by event_id: duplicates are the caller's to drop)."""
    return combine((Candle.of_tick(t, width_us) for t in ticks), width_us)
