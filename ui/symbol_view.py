"""Pure helpers of the Symbol page: URL parameters, metric cards, history and gap tables, CSV.

No Streamlit import and no I/O: the page fetches and renders, these functions decide what it
shows, so unit tests can check every number and string without a runtime or a backend.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from backend.core.candles import INTERVALS_S
from backend.core.gaps import GapRecord, GapsResponse
from backend.core.view import View
from ui.charts import MAX_CANDLES
from ui.watchlist import format_age, format_pct, format_price, format_quantity, parse_ts

INTERVALS: tuple[str, ...] = tuple(INTERVALS_S)  # ("1m", "5m", "15m", "1h"), the API's own
RANGES_S: dict[str, int] = {"1h": 3_600, "6h": 6 * 3_600, "24h": 24 * 3_600, "7d": 7 * 86_400}
DEFAULT_INTERVAL = "1m"
DEFAULT_RANGE = "1h"
DEFAULT_SMA = 20
SMA_MIN, SMA_MAX = 2, 200
DEFAULT_HISTORY = 200
HISTORY_MIN, HISTORY_MAX = 1, 10_000  # the history endpoint's own bounds

# The API's symbol path pattern: anything else would be a 422, so it never leaves the page.
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._:/-]{0,31}$")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
EMPTY = "—"

HISTORY_COLUMNS: tuple[str, ...] = (
    "ts",
    "price",
    "volume",
    "source",
    "seq",
    "event_id",
    "received_at",
)
OPEN_GAP_COLUMNS: tuple[str, ...] = (
    "source",
    "from_seq",
    "to_seq",
    "missing",
    "detected_at",
    "open_for",
)
CLOSED_GAP_COLUMNS: tuple[str, ...] = (
    "source",
    "from_seq",
    "to_seq",
    "missing",
    "detected_at",
    "closed_at",
    "lasted",
)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One REST read: when, its answer, or why there is none (`error`, fit for a banner)."""

    fetched_at: datetime
    data: Any = None
    error: str | None = None


# --- URL parameters -----------------------------------------------------------------------
def normalize_symbol(raw: Any) -> str | None:
    """The symbol a URL asks for, upper-cased, or None when the API could never know it."""
    if not isinstance(raw, str):
        return None
    symbol = raw.strip().upper()
    return symbol if _SYMBOL_RE.match(symbol) else None


def symbol_options(known: Iterable[str], requested: str | None) -> list[str]:
    """Sorted known symbols, plus the requested one if the backend does not know it (yet).

    Keeping an unknown request selectable lets the page say so, and fill in by itself once
    ticks for it arrive, instead of silently showing another symbol.
    """
    options = sorted({s for s in known if isinstance(s, str) and s})
    if requested is not None and requested not in options:
        options.append(requested)
    return options


def choose(raw: Any, options: Sequence[str], default: str) -> str:
    """`raw` if it is one of `options`, else `default` (a hand-edited URL must not break)."""
    return raw if isinstance(raw, str) and raw in options else default


def clamp_int(raw: Any, default: int, low: int, high: int) -> int:
    """An int parameter from a URL, clamped to [low, high]; `default` when not a number."""
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return default
    return max(low, min(high, value))


# --- candles ------------------------------------------------------------------------------
def candle_limit(range_key: str, interval: str) -> int:
    """Candles needed to cover the range (the current bucket included), at most MAX_CANDLES."""
    seconds = RANGES_S.get(range_key, RANGES_S[DEFAULT_RANGE])
    width = INTERVALS_S.get(interval, INTERVALS_S[DEFAULT_INTERVAL])
    return max(1, min(MAX_CANDLES, math.ceil(seconds / width)))


def range_note(range_key: str, interval: str) -> str | None:
    """Why the chart shows less than the range asked for, or None when it covers it all."""
    seconds = RANGES_S.get(range_key, RANGES_S[DEFAULT_RANGE])
    width = INTERVALS_S.get(interval, INTERVALS_S[DEFAULT_INTERVAL])
    limit = candle_limit(range_key, interval)
    if limit * width >= seconds:
        return None
    return (
        f"Showing the last {limit} {interval} candles ({format_age(limit * width)}) of {range_key}:"
        " pick a longer interval to see the whole range."
    )


# --- the view W ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MetricCard:
    """One `st.metric`: label, formatted value, optional delta and tooltip."""

    label: str
    value: str
    delta: str | None = None
    help: str | None = None


def tick_age_s(view: View | None, now: datetime) -> float | None:
    """Wall-clock seconds since the backend received the latest tick (never negative).

    `last_received_at` is what staleness is judged on; `last_ts` (event time) is the fallback
    should it not parse.
    """
    if view is None:
        return None
    stamp = parse_ts(view.last_received_at) or parse_ts(view.last_ts)
    if stamp is None:
        return None
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return max(0.0, (now - stamp).total_seconds())


def stale_reason(view: View | None, now: datetime, stale_after_s: float) -> str | None:
    """Why the view should not be trusted as live, or None when it is fresh.

    Re-evaluated here with the page's clock: a view pushed by the live feed carries the `stale`
    flag of the moment it was computed, which says nothing about the silence since.
    """
    if view is None:
        return None
    gaps = view.gaps_open
    if gaps:
        return f"{gaps} sequence gap{'' if gaps == 1 else 's'} open"
    age = tick_age_s(view, now)
    if age is not None and age > stale_after_s:
        return f"no tick for {format_age(age)}"
    if view.stale:
        return "the backend marks this view stale"
    return None


def view_metrics(view: View, now: datetime) -> list[MetricCard]:
    """The metric cards of W, formatted like the Live page's watchlist."""
    delta = format_pct(view.change_1m_pct) or None
    age = tick_age_s(view, now)
    return [
        MetricCard(
            "Last price",
            _or_empty(format_price(view.last_price)),
            delta,
            "Latest tick's price; the delta is the change over the last minute.",
        ),
        MetricCard(
            "SMA-10", _or_empty(format_price(view.sma_10)), help="Mean of the last 10 prices"
        ),
        MetricCard(
            "VWAP-1m",
            _or_empty(format_price(view.vwap_1m)),
            help="Volume-weighted average price over the last minute (event time)",
        ),
        MetricCard("Volume 1m", _or_empty(format_quantity(view.volume_1m))),
        MetricCard("Trades 1m", _or_empty(format_quantity(view.trades_1m, 0))),
        MetricCard("Ticks total", _or_empty(format_quantity(view.ticks_total, 0))),
        MetricCard(
            "Last tick",
            EMPTY if age is None else f"{format_age(age)} ago",
            help="Wall-clock time since the backend received the latest tick",
        ),
        MetricCard(
            "Gaps open",
            _or_empty(format_quantity(view.gaps_open, 0)),
            help="Sequence gaps still open across this symbol's sources",
        ),
    ]


# --- history ------------------------------------------------------------------------------
def history_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """History rows → a typed table, newest first by (ts, event_id), as the API orders them."""
    records = [{col: row.get(col) for col in HISTORY_COLUMNS} for row in rows]
    frame = pd.DataFrame.from_records(records, columns=list(HISTORY_COLUMNS))
    for col in ("ts", "received_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True, errors="coerce", format="ISO8601")
    for col in ("price", "volume"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["seq"] = pd.to_numeric(frame["seq"], errors="coerce").astype("Int64")
    for col in ("source", "event_id"):
        frame[col] = frame[col].astype("string")
    frame = frame.sort_values(["ts", "event_id"], ascending=False, kind="stable")
    return frame.reset_index(drop=True)


def history_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV of a `history_frame`, timestamps as ISO 8601 UTC with microseconds."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ", lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def csv_filename(symbol: str, now: datetime) -> str:
    """`BTCUSDT_ticks_20261121T143000Z.csv`; characters a file system dislikes become `-`."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    safe = _FILENAME_UNSAFE.sub("-", symbol) or "symbol"
    return f"{safe}_ticks_{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.csv"


def price_format(value: Any) -> str:
    """A printf format for a price column, with the decimals `format_price` would use."""
    text = format_price(value)
    decimals = len(text.split(".", 1)[1]) if "." in text else 2
    return f"%.{decimals}f"


# --- gaps ---------------------------------------------------------------------------------
def gap_rows(
    body: GapsResponse | None, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`GET /symbols/{s}/gaps` → (open rows, closed rows), in the API's order.

    Durations are formatted text ("12.5 s", "3.1 min"): the table is read, not computed on.
    """
    if body is None:
        return [], []
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    open_rows: list[dict[str, Any]] = []
    for gap in body.open:
        detected = parse_ts(gap.detected_at)
        open_rows.append(
            {
                **_gap_base(gap, detected),
                "open_for": _duration(detected, now),
            }
        )
    closed_rows: list[dict[str, Any]] = []
    for gap in body.closed:
        detected = parse_ts(gap.detected_at)
        closed = parse_ts(gap.closed_at)
        closed_rows.append(
            {
                **_gap_base(gap, detected),
                "closed_at": closed,
                "lasted": _duration(detected, closed),
            }
        )
    return open_rows, closed_rows


def missing_total(rows: Iterable[Mapping[str, Any]]) -> int:
    """Ticks missing across gap rows."""
    return sum(_int(row.get("missing")) or 0 for row in rows)


def _gap_base(gap: GapRecord, detected: datetime | None) -> dict[str, Any]:
    return {
        "source": gap.source,
        "from_seq": gap.from_seq,
        "to_seq": gap.to_seq,
        "missing": gap.missing,
        "detected_at": detected,
    }


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return format_age(max(0.0, (end - start).total_seconds()))


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _or_empty(text: str) -> str:
    return text or EMPTY
