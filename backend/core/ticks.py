"""The tick: its validated input form, its compact internal form, and their wire encoding.

Pure: no I/O, no clock. Time bounds are checked against a `now` that the caller passes in.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._:/-]{0,31}$")
MIN_PRICE = 1e-12
MAX_PRICE = 1e12
MIN_NONZERO_VOLUME = 1e-12  # bounds the exponents, so candle sums stay exact (core/candles.py)
MAX_VOLUME = 1e15
MAX_SEQ = 2**63 - 1
US_PER_MS = 1_000
US_PER_S = 1_000_000


class Tick(NamedTuple):
    """A validated tick in the compact form the bus, the workers and storage share.

    `ts_us` is event time and `received_us` the moment the API accepted it, both in
    microseconds since the Unix epoch (UTC).
    """

    event_id: str
    symbol: str
    ts_us: int
    price: float
    volume: float
    source: str
    seq: int | None
    received_us: int

    def order_key(self) -> tuple[int, str]:
        """Ticks are ordered by event time, ties broken by event_id."""
        return (self.ts_us, self.event_id)

    def content(self) -> list[Any]:
        """What makes two ticks with one event_id "the same" (arrival time excluded)."""
        return [self.symbol, self.ts_us, self.price, self.volume, self.source, self.seq]


CONTENT_FIELDS = ("symbol", "ts", "price", "volume", "source", "seq")


def encode_tick(tick: Tick) -> bytes:
    """Compact JSON array; the form carried in Dramatiq messages and the outbox."""
    return orjson.dumps(list(tick))


def decode_tick(raw: list[Any]) -> Tick:
    event_id, symbol, ts_us, price, volume, source, seq, received_us = raw
    return Tick(event_id, symbol, int(ts_us), float(price), float(volume), source, seq, received_us)


def encode_content(tick: Tick) -> bytes:
    return orjson.dumps(tick.content())


def differing_fields(stored_content: bytes, tick: Tick) -> list[str]:
    """Names of the fields in which `tick` differs from a stored content fingerprint."""
    stored = orjson.loads(stored_content)
    return [
        name for name, a, b in zip(CONTENT_FIELDS, stored, tick.content(), strict=True) if a != b
    ]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us_to_datetime(ts_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=ts_us)


def us_to_iso(ts_us: int) -> str:
    return us_to_datetime(ts_us).isoformat().replace("+00:00", "Z")


def datetime_to_us(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)


class TickIn(BaseModel):
    """A tick as posted to the API. Unknown fields are rejected; numbers must be JSON numbers."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "price": 64123.5,
                    "volume": 0.25,
                    "source": "binance",
                    "ts": "2026-11-21T14:30:00.123Z",
                    "event_id": "binance-BTCUSDT-000001",
                    "seq": 1,
                }
            ]
        },
    )

    symbol: StrictStr = Field(description="Instrument, e.g. BTCUSDT: ^[A-Z0-9][A-Z0-9._:/-]{0,31}$")
    price: Annotated[StrictFloat | StrictInt, Field(description="Finite, > 0")]
    volume: Annotated[StrictFloat | StrictInt, Field(description="Finite, >= 0")]
    source: StrictStr = Field(description="Feed or exchange id, 1-64 printable characters")
    ts: Annotated[
        StrictStr | StrictInt,
        Field(description="Event time: ISO-8601 with a UTC offset, or integer epoch milliseconds"),
    ]
    event_id: StrictStr = Field(description="Idempotency key, 1-128 printable characters")
    seq: Annotated[
        StrictInt | None, Field(description="Optional per (source, symbol) sequence, >= 0")
    ] = None

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        if not SYMBOL_RE.match(value):
            raise ValueError(
                "must match ^[A-Z0-9][A-Z0-9._:/-]{0,31}$ (upper case, at most 32 chars)"
            )
        return value

    @field_validator("price")
    @classmethod
    def _price(cls, value: float) -> float:
        value = _finite(value, "price")
        if not MIN_PRICE <= value <= MAX_PRICE:
            raise ValueError(f"must be > 0, between {MIN_PRICE:g} and {MAX_PRICE:g}")
        return value

    @field_validator("volume")
    @classmethod
    def _volume(cls, value: float) -> float:
        value = _finite(value, "volume")
        if not (value == 0 or MIN_NONZERO_VOLUME <= value <= MAX_VOLUME):
            raise ValueError(f"must be 0 or between {MIN_NONZERO_VOLUME:g} and {MAX_VOLUME:g}")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not 1 <= len(value) <= 64 or not value.isprintable():
            raise ValueError("must be 1-64 printable characters")
        return value

    @field_validator("event_id")
    @classmethod
    def _event_id(cls, value: str) -> str:
        if not 1 <= len(value) <= 128 or not value.isprintable():
            raise ValueError("must be 1-128 printable characters")
        return value

    @field_validator("seq")
    @classmethod
    def _seq(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_SEQ:
            raise ValueError("must be an integer >= 0 (64-bit)")
        return value

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: str | int) -> str | int:
        parse_ts_us(value)  # raises ValueError with the reason
        return value


def parse_ts_us(value: str | int) -> int:
    """Event time in µs. Integers are always epoch milliseconds: never guessed."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO-8601 string or integer epoch milliseconds")
    if isinstance(value, int):
        if not 0 <= value <= 253_402_300_799_999:
            raise ValueError("epoch milliseconds out of range")
        return value * US_PER_MS
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be ISO-8601, e.g. 2026-11-21T14:30:00.123Z") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("ISO-8601 time needs a UTC offset (Z or +hh:mm)")
    return datetime_to_us(parsed)


class TimeBounds(NamedTuple):
    """How far from `now` an event time may be; passed in so the check stays pure."""

    now_us: int
    max_age_s: float
    max_future_s: float


def check_time_bounds(ts_us: int, bounds: TimeBounds) -> str | None:
    """The reason `ts_us` is out of bounds, or None when it is acceptable."""
    if ts_us > bounds.now_us + bounds.max_future_s * US_PER_S:
        return f"more than {bounds.max_future_s:g} s in the future"
    if ts_us < bounds.now_us - bounds.max_age_s * US_PER_S:
        return f"older than MAX_TICK_AGE ({bounds.max_age_s:g} s)"
    return None


def to_tick(tick_in: TickIn, received_us: int) -> Tick:
    return Tick(
        event_id=tick_in.event_id,
        symbol=tick_in.symbol,
        ts_us=parse_ts_us(tick_in.ts),
        price=float(tick_in.price),
        volume=float(tick_in.volume),
        source=tick_in.source,
        seq=tick_in.seq,
        received_us=received_us,
    )
