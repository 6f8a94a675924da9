"""A hand-written validator for the common case: a well-formed tick, built without pydantic.

Why: `TickIn.model_validate` + `to_tick` was the largest single item of the API's CPU per
single-tick request. Almost every tick a feeder sends is valid, and for those the checks are a
handful of type tests and comparisons.

Contract (tests/unit/core/test_tick_fastpath.py proves it with hypothesis): `fast_tick` returns
a `Tick` only for input that `TickIn` + `to_tick` + `check_time_bounds` accept, and then the very
same `Tick`; for anything else it returns None and the caller runs the pydantic path, so every
error message stays the one that path produces. It is deliberately narrower than pydantic
(exact `str`/`int`/`float` types only); narrower costs a fallback, never a different answer.
"""

from __future__ import annotations

import math
from typing import Any

from backend.core.ticks import (
    MAX_PRICE,
    MAX_SEQ,
    MAX_VOLUME,
    MIN_NONZERO_VOLUME,
    MIN_PRICE,
    SYMBOL_RE,
    Tick,
    TimeBounds,
    check_time_bounds,
    parse_ts_us,
)

_REQUIRED = frozenset(("symbol", "price", "volume", "source", "ts", "event_id"))
_ALLOWED = _REQUIRED | {"seq"}
_symbol_ok = SYMBOL_RE.match


def _number(value: Any) -> float | None:
    """`value` as a finite float when it is a JSON number (bool excluded), else None."""
    kind = type(value)
    if kind is not float and kind is not int:
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range: let pydantic decide
        return None
    return number if math.isfinite(number) else None


def _text(value: Any, longest: int) -> bool:
    return type(value) is str and 1 <= len(value) <= longest and value.isprintable()


def fast_tick(raw: dict[str, Any], bounds: TimeBounds) -> Tick | None:
    """The `Tick` the pydantic path would build from `raw`, or None: "ask the pydantic path"."""
    keys = raw.keys()
    if not (_REQUIRED <= keys <= _ALLOWED):
        return None
    symbol = raw["symbol"]
    if type(symbol) is not str or not _symbol_ok(symbol):
        return None
    price = _number(raw["price"])
    if price is None or not MIN_PRICE <= price <= MAX_PRICE:
        return None
    volume = _number(raw["volume"])
    if volume is None or not (volume == 0 or MIN_NONZERO_VOLUME <= volume <= MAX_VOLUME):
        return None
    source = raw["source"]
    event_id = raw["event_id"]
    if not _text(source, 64) or not _text(event_id, 128):
        return None
    seq = raw.get("seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq <= MAX_SEQ):
        return None
    ts = raw["ts"]
    if type(ts) is not int and type(ts) is not str:
        return None
    try:
        ts_us = parse_ts_us(ts)
    except ValueError:
        return None
    if check_time_bounds(ts_us, bounds) is not None:
        return None
    return Tick(event_id, symbol, ts_us, price, volume, source, seq, bounds.now_us)
