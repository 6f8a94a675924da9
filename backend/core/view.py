"""The view W: what analysts see for a symbol, computed purely from its window state.

calc-b: `build_view(state, updated_at_us)`. Every figure depends only on the set of ticks
accepted: window sums are exact decimals kept by calc-a, the 10 latest are held in the state.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

from backend.core.ticks import us_to_iso
from backend.core.window import WindowState

DEFAULT_STALE_AFTER_S = 10.0
_VWAP = decimal.Context(prec=34)


def build_view(
    state: WindowState, updated_at_us: int, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> dict[str, Any] | None:
    """W for `state`, or None when the symbol has no ticks yet."""
    if not state.latest:
        return None
    last_ts, last_eid, last_price, _last_vol, last_source = state.latest[-1]
    latest = state.latest[::-1]
    win = state.window
    first = win.first or state.latest[-1]  # the window always holds at least the last tick
    open_1m = first[2]
    view = {
        "symbol": state.symbol,
        "last_price": last_price,
        "last_ts": us_to_iso(last_ts),
        "last_event_id": last_eid,
        "last_source": last_source,
        "ticks_total": state.ticks_total,
        "sma_10": math.fsum(e[2] for e in latest) / len(latest),
        "last_10": [
            {"ts": us_to_iso(e[0]), "price": e[2], "volume": e[3], "source": e[4], "event_id": e[1]}
            for e in latest
        ],
        "vwap_1m": float(_VWAP.divide(win.notional, win.volume)) if win.volume > 0 else None,
        "volume_1m": float(win.volume),
        "trades_1m": win.count,
        "high_1m": win.high,
        "low_1m": win.low,
        "open_1m": open_1m,
        "change_1m_pct": (last_price - open_1m) / open_1m * 100.0,
        "gaps_open": sum(len(t.open) for t in state.seqs.values()),
        "last_received_at": us_to_iso(state.last_received_us),
        "last_received_us": state.last_received_us,
        "updated_at": us_to_iso(updated_at_us),
    }
    return with_staleness(view, updated_at_us, stale_after_s)


def with_staleness(view: dict[str, Any], now_us: int, stale_after_s: float) -> dict[str, Any]:
    """`stale`: a gap is open, or no tick arrived for `stale_after_s` of wall-clock time.

    Wall-clock dependent by definition, so readers re-evaluate it with their own `now`.
    """
    quiet_s = (now_us - view.get("last_received_us", 0)) / 1_000_000
    view["stale"] = bool(view.get("gaps_open", 0)) or quiet_s > stale_after_s
    return view


# Wall-clock facts: excluded from the "same set, same view" guarantee.
VIEW_FIELDS_EXCLUDED_FROM_EQUALITY = ("updated_at", "stale", "last_received_at", "last_received_us")


def comparable(view: dict[str, Any] | None) -> dict[str, Any] | None:
    """The view without its wall-clock stamp: what must be identical across orderings."""
    if view is None:
        return None
    return {k: v for k, v in view.items() if k not in VIEW_FIELDS_EXCLUDED_FROM_EQUALITY}
