"""Pure helpers that turn views (W) into watchlist rows.

No Streamlit import here on purpose: these functions are the page's logic, and keeping them pure
lets the unit tests run without a Streamlit runtime. W is the backend's own `View` model, so a
field renamed there breaks here (and in the tests), not silently in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from backend.core.view import View

__all__ = ["View"]  # the UI's W is the backend's contract, re-exported for the pages

# Column order of a watchlist row; the page maps these keys to labels and number formats.
WATCHLIST_COLUMNS: tuple[str, ...] = (
    "symbol",
    "status",
    "last_price",
    "change_1m_pct",
    "trend",
    "sma_10",
    "vwap_1m",
    "volume_1m",
    "trades_1m",
    "ticks_total",
    "age_s",
)

_NUMERIC_FIELDS: tuple[str, ...] = (
    "last_price",
    "change_1m_pct",
    "sma_10",
    "vwap_1m",
    "volume_1m",
)
_INT_FIELDS: tuple[str, ...] = ("trades_1m", "ticks_total")


def parse_ts(value: Any) -> datetime | None:
    """An aware datetime from an ISO string (or datetime); None when missing or unparseable.

    Naive values are taken as UTC, because the backend speaks UTC and comparing naive with aware
    datetimes would raise.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


STATUS_LIVE = "● live"
STATUS_WAITING = "○ waiting"


def trend(view: View) -> list[float]:
    """The prices of W's `last_10` (sent newest first), oldest first: the sparkline's points.

    Taken from the view itself rather than accumulated from events, so a session that missed
    events never draws a line through a gap.
    """
    return [tick.price for tick in reversed(view.last_10)]


def status(view: View | None, now: datetime, stale_after_s: float) -> str:
    """The badge: open sequence gaps first (data is missing), then silence, else live.

    Staleness is re-evaluated with the reader's clock: W's own `stale` was true or false when it
    was computed, and a symbol that went quiet has no new W to say so.
    """
    if view is None:
        return STATUS_WAITING
    if view.gaps_open > 0:
        return f"▲ gap ×{view.gaps_open}"
    received = parse_ts(view.last_received_at) or parse_ts(view.last_ts)
    if received is not None:
        quiet_s = (now - received).total_seconds()
        if quiet_s > stale_after_s:
            return f"◆ stale {format_age(quiet_s)}"
    return STATUS_LIVE


def status_color(value: Any) -> str:
    """CSS for the status badge: amber for a gap, grey for stale, green for live."""
    text = str(value or "")
    if text.startswith("▲"):
        return "color: #ffa726; font-weight: 600"
    if text.startswith("◆"):
        return "color: #9e9e9e"
    if text == STATUS_LIVE:
        return "color: #26a69a"
    return ""


def watchlist_rows(
    views: Mapping[str, View | None], now: datetime, stale_after_s: float = 10.0
) -> list[dict[str, Any]]:
    """One row per symbol, sorted by symbol, with the numbers the Live page shows.

    `age_s` is the seconds since the symbol's last tick (`last_ts`), never negative, so a slightly
    fast feeder clock does not show "-0.2 s". Symbols without a view get a row of Nones (and the
    "waiting" badge).
    """
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    for symbol in sorted(views):
        view = views[symbol]
        row: dict[str, Any] = {"symbol": symbol, "status": status(view, now, stale_after_s)}
        if view is None:
            rows.append({key: row.get(key) for key in WATCHLIST_COLUMNS})
            continue
        for field in _NUMERIC_FIELDS:
            row[field] = _as_float(getattr(view, field))
        for field in _INT_FIELDS:
            row[field] = getattr(view, field)
        row["trend"] = trend(view) or None
        last_ts = parse_ts(view.last_ts)
        row["age_s"] = None if last_ts is None else max(0.0, (now - last_ts).total_seconds())
        rows.append({key: row[key] for key in WATCHLIST_COLUMNS})
    return rows


SYMBOL_IN_LINK = r"symbol=([^&]+)"  # what a link column shows of `symbol_link`: the symbol


def symbol_link(symbol: str) -> str:
    """The Symbol page of `symbol`, relative to the Live page so a `baseUrlPath` prefix is kept."""
    return f"symbol?{urlencode({'symbol': symbol})}"


def format_price(value: Any) -> str:
    """A price with decimals that fit its size: 67,012.35 / 1.08345 / 0.00012345.

    One fixed format cannot serve BTC and EURUSD in the same column.
    """
    number = _as_float(value)
    if number is None or number != number:  # None or NaN
        return ""
    magnitude = abs(number)
    if magnitude >= 1_000:
        return f"{number:,.2f}"
    if magnitude >= 100:
        return f"{number:,.3f}"
    if magnitude >= 1:
        return f"{number:,.5f}"
    return f"{number:.8f}"


def format_pct(value: Any) -> str:
    """A signed percentage with three decimals; the backend's `change_1m_pct` is already in %."""
    number = _as_float(value)
    if number is None or number != number:
        return ""
    return f"{number:+.3f}%"


def format_quantity(value: Any, decimals: int = 4) -> str:
    """A volume or count with thousands separators and trailing zeros trimmed."""
    number = _as_float(value)
    if number is None or number != number:
        return ""
    text = f"{number:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_age(value: Any) -> str:
    """Seconds since the last tick, coarse enough not to flicker every refresh."""
    number = _as_float(value)
    if number is None or number != number:
        return ""
    if number < 60:
        return f"{number:.1f} s"
    if number < 3_600:
        return f"{number / 60:.1f} min"
    return f"{number / 3_600:.1f} h"


def change_color(value: Any) -> str:
    """CSS for the change column: green up, red down, nothing when flat or unknown."""
    number = _as_float(value)
    if number is None or number != number or number == 0:
        return ""
    return "color: #26a69a" if number > 0 else "color: #ef5350"
