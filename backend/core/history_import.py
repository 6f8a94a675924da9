"""Historical ticks from a file: which column is which, one row into a tick (or the reasons it is
refused), and the event_id of a row that has none.

Pure. Every row passes the live ingest's validation (`TickIn`: symbol, price, volume, source,
event_id, seq rules; the future skew of `check_time_bounds`) except the age limit: history is
the point of an import. That is safe because the import writes straight into `md_ticks`, whose
primary key is the event_id, so a tick imported twice, or imported and also sent live, is stored
and counted once; live ingest needs `MAX_TICK_AGE` only because its Redis de-dup forgets an
event_id after `DEDUP_TTL`.

A row without an event_id gets one derived from its validated content (symbol, ts in µs, price,
volume, source, seq) and how many good rows with the same content came before it in the file
(`DerivedIds`). So two identical trades stay two ticks, and the same file imported again, as
CSV or as Parquet, derives the same ids and inserts nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from backend.core.ticks import (
    Tick,
    TickIn,
    TimeBounds,
    check_time_bounds,
    datetime_to_us,
    parse_ts_us,
)
from backend.core.validation import errors_from_validation

FIELDS = ("symbol", "ts", "price", "volume", "source", "event_id", "seq")
REQUIRED = ("symbol", "ts", "price", "volume")
# Column names (case-insensitive, surrounding spaces ignored) accepted for each field.
ALIASES: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker", "instrument"),
    "ts": ("ts", "timestamp", "time", "datetime"),
    "price": ("price", "px"),
    "volume": ("volume", "qty", "quantity", "size", "amount"),
    "source": ("source", "exchange", "venue"),
    "event_id": ("event_id", "trade_id", "id"),
    "seq": ("seq", "sequence"),
}
TsUnit = Literal["s", "ms", "us", "ns"]
_US_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}


class ColumnError(ValueError):
    """The file's header cannot be mapped (a required column missing, or named twice)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # CSV: the physical line where the row starts (header = 1); Parquet: row index
    field: str
    reason: str


def map_columns(header: Sequence[str]) -> dict[str, int]:
    """Field -> the index of its column in `header`."""
    lowered = [name.strip().lower() for name in header]
    mapping: dict[str, int] = {}
    for field, names in ALIASES.items():
        found = [i for i, name in enumerate(lowered) if name in names]
        if len(found) > 1:
            raise ColumnError(
                f"{field}: more than one column for it ({[header[i] for i in found]})"
            )
        if found:
            mapping[field] = found[0]
    missing = [f for f in REQUIRED if f not in mapping]
    if missing:
        accepted = "; ".join(f"{f}: {', '.join(ALIASES[f])}" for f in missing)
        raise ColumnError(f"missing column(s) {', '.join(missing)} (accepted names: {accepted})")
    return mapping


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int | float):
        return value
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"must be a number, not {text[:20]!r}") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _ts_us(value: Any, unit: TsUnit) -> int:
    """A cell's event time in µs: a datetime (Parquet), ISO-8601 with an offset, or an integer
    epoch in `unit` (never guessed from its size, like live ingest)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp without a time zone (store UTC timestamps)")
        return datetime_to_us(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        epoch = int(text)
        us = epoch // 1_000 if unit == "ns" else epoch * _US_PER[unit]
        if not 0 <= us <= 253_402_300_799_999_999:
            raise ValueError(f"epoch {unit} out of range")
        return us
    return parse_ts_us(text)


def _seq(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError("must be an integer")
        number = int(number)
    return number


def content_digest(tick: Tick) -> bytes:
    """The digest of a tick's content as stored (symbol, ts µs, price, volume, source, seq):
    normalized values, not the file's spelling, so `100.50` in a CSV and 100.5 in a Parquet
    float column, or an ISO time and the same instant in epoch ms, are the same content."""
    seq = "" if tick.seq is None else str(tick.seq)
    raw = "\x1f".join(
        (tick.symbol, str(tick.ts_us), repr(tick.price), repr(tick.volume), tick.source, seq)
    )
    return hashlib.sha256(raw.encode()).digest()


def derived_event_id(key: bytes, occurrence: int) -> str:
    """`imp-` + 32 hex digits of the content digest and the occurrence index."""
    return "imp-" + hashlib.sha256(key + occurrence.to_bytes(8, "big")).hexdigest()[:32]


class DerivedIds:
    """Event ids for the rows of ONE file that have none, in file order.

    The n-th good row with a given content gets `derived_event_id(content, n)`: two identical
    trades stay two ticks, and the same file (or another export that repeats its rows) derives
    the same ids. Costs one small dict entry per distinct content (~100 bytes), only for files
    without an event_id column.
    """

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def assign(self, tick: Tick) -> Tick:
        key = content_digest(tick)
        short = key[:16]  # 128 bits: collisions are out of reach; halves the memory
        occurrence = self._seen.get(short, 0)
        self._seen[short] = occurrence + 1
        return tick._replace(event_id=derived_event_id(key, occurrence))


PLACEHOLDER_ID = "imp-pending"  # valid for TickIn; replaced by DerivedIds before any write


def parse_row(
    cells: Mapping[str, Any],
    *,
    line: int,
    default_source: str,
    ts_unit: TsUnit,
    received_us: int,
    max_future_s: float,
) -> tuple[Tick, bool] | list[RowError]:
    """One row as (tick, whether its event_id must be derived), or every reason it is refused
    (each naming its field).

    The live ingest's rules (`TickIn`, and `check_time_bounds` with its future skew) except the
    age limit, which is infinite here: see the module docstring for why that is safe.
    """
    errors: list[RowError] = []
    values: dict[str, Any] = {}
    for field in REQUIRED:
        if _blank(cells.get(field)):
            errors.append(RowError(line, field, "missing"))
    converters = {"price": _number, "volume": _number, "seq": _seq}
    for field, convert in converters.items():
        cell = cells.get(field)
        if _blank(cell):
            continue
        try:
            values[field] = convert(cell)
        except ValueError as exc:
            errors.append(RowError(line, field, str(exc)))
    ts_cell = cells.get("ts")
    ts_us = 0
    if not _blank(ts_cell):
        try:
            ts_us = _ts_us(ts_cell, ts_unit)
        except ValueError as exc:
            errors.append(RowError(line, "ts", str(exc)))
        else:
            bounds = TimeBounds(now_us=received_us, max_age_s=math.inf, max_future_s=max_future_s)
            reason = check_time_bounds(ts_us, bounds)
            if reason is not None:
                errors.append(RowError(line, "ts", reason))
    if errors:
        return errors
    source = cells.get("source")
    event_id = cells.get("event_id")
    derive = _blank(event_id)
    candidate = {
        "symbol": str(cells["symbol"]).strip(),
        "price": values["price"],
        "volume": values["volume"],
        "source": default_source if _blank(source) else str(source).strip(),
        "ts": 0,  # checked above, in µs; TickIn's ts is epoch ms
        "event_id": PLACEHOLDER_ID if derive else str(event_id).strip(),
        "seq": values.get("seq"),
    }
    try:
        tick_in = TickIn.model_validate(candidate)
    except ValidationError as exc:
        return [RowError(line, e["field"], e["reason"]) for e in errors_from_validation(exc)]
    tick = Tick(
        event_id=tick_in.event_id, symbol=tick_in.symbol, ts_us=ts_us,
        price=float(tick_in.price), volume=float(tick_in.volume), source=tick_in.source,
        seq=tick_in.seq, received_us=received_us,
    )  # fmt: skip
    return tick, derive
