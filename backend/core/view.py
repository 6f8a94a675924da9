"""The view W: what analysts see for a symbol, computed purely from its window state.

calc-b: `build_view(state, updated_at_us)`. Every figure depends only on the set of ticks
accepted: window sums are exact decimals kept by calc-a, the 10 latest are held in the state.

`View` is the contract every reader shares (the API's `response_model`, the UI, the bus event,
the tests' builders), so a renamed field fails where it is read, not in production. Timestamps
stay the ISO-8601 strings `us_to_iso` writes, so the stored JSON keeps its exact bytes.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

from pydantic import Field

from backend.core.contract import Contract
from backend.core.ticks import us_to_iso
from backend.core.timestamps import IsoTime
from backend.core.window import WindowState

DEFAULT_STALE_AFTER_S = 10.0
_VWAP = decimal.Context(prec=34)


class LastTick(Contract):
    """One of the 10 latest ticks of a symbol, newest first in `View.last_10`."""

    ts: IsoTime
    price: float
    volume: float
    source: str
    event_id: str


class View(Contract):
    """W: the latest figures of one symbol (the 1-minute window is on event time).

    Frozen, so a view can be shared between threads and sessions without a defensive copy.
    """

    symbol: str
    last_price: float
    last_ts: IsoTime = Field(description="Event time of the latest tick")
    last_event_id: str
    last_source: str
    ticks_total: int = Field(description="Distinct ticks accepted since the symbol was first seen")
    sma_10: float = Field(description="Mean of the 10 latest prices (fewer at first)")
    last_10: tuple[LastTick, ...] = Field(description="The 10 latest ticks, newest first")
    vwap_1m: float | None = Field(description="Volume-weighted price; null when volume is 0")
    volume_1m: float
    trades_1m: int
    high_1m: float
    low_1m: float
    open_1m: float
    change_1m_pct: float = Field(description="Change from the window's first price, in %")
    gaps_open: int = Field(description="Open sequence gaps across the symbol's sources")
    last_received_at: IsoTime = Field(description="Wall-clock arrival of the latest tick")
    last_received_us: int
    updated_at: IsoTime = Field(description="When this view was computed")
    stale: bool = Field(description="A gap is open or the symbol has been quiet too long")

    def to_json_bytes(self) -> bytes:
        """The stored and published form (same keys and order as the fields above)."""
        return self.__pydantic_serializer__.to_json(self)


def build_view(
    state: WindowState, updated_at_us: int, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> View | None:
    """W for `state`, or None when the symbol has no ticks yet.

    Built as a dict and validated in one call: pydantic-core checks it faster than
    `model_construct` assembles the same model field by field in Python, and this runs once per
    symbol per batch on calc's hot path.
    """
    if not state.latest:
        return None
    last_ts, last_eid, last_price, _last_vol, last_source = state.latest[-1]
    latest = state.latest[::-1]
    win = state.window
    first = win.first or state.latest[-1]  # the window always holds at least the last tick
    open_1m = first[2]
    gaps_open = sum(len(t.open) for t in state.seqs.values())
    return View.model_validate(
        {
            "symbol": state.symbol,
            "last_price": last_price,
            "last_ts": us_to_iso(last_ts),
            "last_event_id": last_eid,
            "last_source": last_source,
            "ticks_total": state.ticks_total,
            "sma_10": math.fsum(e[2] for e in latest) / len(latest),
            "last_10": [
                {
                    "ts": us_to_iso(e[0]),
                    "price": e[2],
                    "volume": e[3],
                    "source": e[4],
                    "event_id": e[1],
                }
                for e in latest
            ],
            "vwap_1m": float(_VWAP.divide(win.notional, win.volume)) if win.volume > 0 else None,
            "volume_1m": float(win.volume),
            "trades_1m": win.count,
            "high_1m": win.high,
            "low_1m": win.low,
            "open_1m": open_1m,
            "change_1m_pct": (last_price - open_1m) / open_1m * 100.0,
            "gaps_open": gaps_open,
            "last_received_at": us_to_iso(state.last_received_us),
            "last_received_us": state.last_received_us,
            "updated_at": us_to_iso(updated_at_us),
            "stale": is_stale(gaps_open, state.last_received_us, updated_at_us, stale_after_s),
        }
    )


def is_stale(gaps_open: int, last_received_us: int, now_us: int, stale_after_s: float) -> bool:
    """`stale`: a gap is open, or no tick arrived for `stale_after_s` of wall-clock time.

    Wall-clock dependent by definition, so readers re-evaluate it with their own `now`.
    """
    return bool(gaps_open) or (now_us - last_received_us) / 1_000_000 > stale_after_s


def with_staleness(view: View, now_us: int, stale_after_s: float) -> View:
    """`view` with `stale` re-evaluated at `now_us` (a copy: views are frozen)."""
    stale = is_stale(view.gaps_open, view.last_received_us, now_us, stale_after_s)
    return view if stale == view.stale else view.model_copy(update={"stale": stale})


def refresh_stale_json(view: dict[str, Any], now_us: int, stale_after_s: float) -> dict[str, Any]:
    """`with_staleness` for a stored view already parsed as JSON (the API's cheap read path)."""
    view["stale"] = is_stale(
        view.get("gaps_open", 0), view.get("last_received_us", 0), now_us, stale_after_s
    )
    return view


# Wall-clock facts: excluded from the "same set, same view" guarantee.
VIEW_FIELDS_EXCLUDED_FROM_EQUALITY = frozenset(
    {"updated_at", "stale", "last_received_at", "last_received_us"}
)


def comparable(view: View | None) -> dict[str, Any] | None:
    """The view without its wall-clock stamp: what must be identical across orderings."""
    if view is None:
        return None
    return view.model_dump(exclude=set(VIEW_FIELDS_EXCLUDED_FROM_EQUALITY))


class SymbolEntry(Contract):
    """One active symbol of `GET /symbols`; `view` is null until calc has computed it."""

    symbol: str
    view: View | None


class SymbolsResponse(Contract):
    """`GET /symbols`: every active symbol, sorted, with its latest view."""

    symbols: list[SymbolEntry]
