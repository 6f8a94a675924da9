"""Historical ticks from a file: which column is which, one row into a tick (or the reasons it is
refused), and the event_id of a row that has none.

Pure. Every row passes the live ingest's validation (`TickIn`: symbol, price, volume, source,
event_id, seq rules) except the age limit: history is the point of an import. That is safe
because the import writes straight into `md_ticks`, whose primary key is the event_id, so a tick
imported twice, or imported and also sent live, is stored and counted once; live ingest needs
`MAX_TICK_AGE` only because its Redis de-dup forgets an event_id after `DEDUP_TTL`.

A row without an event_id gets one derived from what the file says: a digest of its raw cells
(symbol, ts, price, volume, source, seq) and how many identical rows came before it in the file.
So two identical trades stay two ticks, and the same file imported again derives the same ids
and inserts nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from backend.core.ticks import Tick, TickIn, datetime_to_us, parse_ts_us

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
    line: int  # CSV: physical line (header = 1); Parquet: row index + 2, the same numbering
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


def content_key(cells: Mapping[str, Any]) -> bytes:
    """The digest of a row's raw content (what identical rows share)."""
    raw = "\x1f".join("" if _blank(cells.get(f)) else str(cells[f]).strip() for f in FIELDS[:5])
    raw += "\x1f" + ("" if _blank(cells.get("seq")) else str(cells["seq"]).strip())
    return hashlib.sha256(raw.encode()).digest()


def derived_event_id(key: bytes, occurrence: int) -> str:
    """`imp-` + 32 hex digits of the content digest and the occurrence index."""
    return "imp-" + hashlib.sha256(key + occurrence.to_bytes(8, "big")).hexdigest()[:32]


def parse_row(
    cells: Mapping[str, Any],
    *,
    line: int,
    default_source: str,
    derived_id: str | None,
    ts_unit: TsUnit,
    received_us: int,
) -> Tick | list[RowError]:
    """One row as a tick, or every reason it is refused (each naming its field)."""
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
    if errors:
        return errors
    source = cells.get("source")
    event_id = cells.get("event_id")
    candidate = {
        "symbol": str(cells["symbol"]).strip(),
        "price": values["price"],
        "volume": values["volume"],
        "source": default_source if _blank(source) else str(source).strip(),
        "ts": 0,  # checked above, in µs; TickIn's ts is epoch ms
        "event_id": str(event_id).strip() if not _blank(event_id) else (derived_id or "-"),
        "seq": values.get("seq"),
    }
    try:
        tick_in = TickIn.model_validate(candidate)
    except ValidationError as exc:
        return [
            RowError(line, ".".join(str(p) for p in err["loc"]) or "row", _reason(err["msg"]))
            for err in exc.errors(include_url=False)
        ]
    return Tick(
        event_id=tick_in.event_id, symbol=tick_in.symbol, ts_us=ts_us,
        price=float(tick_in.price), volume=float(tick_in.volume), source=tick_in.source,
        seq=tick_in.seq, received_us=received_us,
    )  # fmt: skip


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")
