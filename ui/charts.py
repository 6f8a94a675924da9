"""Plotly figures of the analyst app, built by pure functions (no Streamlit, no I/O).

Pages fetch data and hand it here; keeping the figure logic pure lets unit tests check the exact
traces (OHLC, SMA values, colours, bounds) without a Streamlit runtime or a backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.core.candles import INTERVALS_S, CandleBar
from ui.watchlist import parse_ts

UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
SMA_COLOR = "#f0b90b"
VWAP_COLOR = "#42a5f5"
GRID_COLOR = "rgba(128, 128, 128, 0.2)"
MAX_CANDLES = 500  # a browser redrawing every 2 s stays smooth well below this
MIN_VISIBLE_BARS = 30  # a young series is drawn on an axis this many bars wide
CHART_HEIGHT = 560


def sma(values: Sequence[float | None], period: int) -> list[float | None]:
    """Simple moving average of `period` values; None until a full window (or over a None).

    `math.fsum` per window rather than a running sum: a running sum drifts over long series,
    and the chart's inputs are at most a few hundred values.
    """
    if period < 1:
        raise ValueError(f"SMA period must be at least 1, got {period}")
    out: list[float | None] = []
    for end in range(1, len(values) + 1):
        window = values[max(0, end - period) : end]
        if len(window) < period or any(v is None for v in window):
            out.append(None)
        else:
            out.append(math.fsum(float(v) for v in window if v is not None) / period)
    return out


def min_window(x: Sequence[datetime | None], interval: str) -> list[datetime] | None:
    """An x range of at least MIN_VISIBLE_BARS bars ending at the last candle, or None.

    Without it, Plotly autoscales a young series (one or two candles) to a sub-millisecond axis
    with one candle as wide as the chart; a terminal shows slim candles at the right edge.
    """
    times = [t for t in x if t is not None]
    width_s = INTERVALS_S.get(interval)
    if not times or width_s is None or len(times) >= MIN_VISIBLE_BARS:
        return None
    width = timedelta(seconds=width_s)
    last = max(times)
    return [last - width * (MIN_VISIBLE_BARS - 0.5), last + width * 0.5]


def uirevision(symbol: str, interval: str) -> str:
    """Plotly keeps zoom/pan while this stays the same: across refreshes, not across symbols."""
    return f"{symbol}:{interval}"


def _x(ts: Any) -> datetime | None:
    """Naive UTC datetime: plotly.js has no time zones and would mis-read an offset."""
    parsed = parse_ts(ts)
    return None if parsed is None else parsed.astimezone(UTC).replace(tzinfo=None)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _usable(candles: Sequence[CandleBar]) -> list[CandleBar]:
    """Candles with a time and four finite prices, oldest first (the API's order, enforced)."""
    kept = [
        c
        for c in candles
        if _x(c.ts) is not None
        and all(_float(p) is not None for p in (c.open, c.high, c.low, c.close))
    ]
    return sorted(kept, key=lambda c: _x(c.ts) or datetime.min)


def _base_layout(fig: go.Figure, symbol: str, interval: str) -> None:
    fig.update_layout(
        uirevision=uirevision(symbol, interval),
        height=CHART_HEIGHT,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        hovermode="x unified",
        showlegend=True,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
        bargap=0.1,
    )


def _overlay(
    x: Sequence[datetime | None],
    y: Sequence[float | None],
    *,
    name: str,
    mode: str,
    line: dict[str, Any],
    **style: Any,
) -> go.Scatter:
    """A line over the candles; a missing value stays a gap rather than a line drawn across it."""
    return go.Scatter(x=x, y=y, mode=mode, name=name, line=line, connectgaps=False, **style)


def empty_figure(symbol: str, interval: str, message: str) -> go.Figure:
    """A blank chart carrying `message`: the page keeps its layout instead of jumping."""
    fig = go.Figure()
    _base_layout(fig, symbol, interval)
    fig.update_layout(showlegend=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text=message,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 15, "color": "#9e9e9e"},
    )
    return fig


def candlestick_figure(
    candles: Sequence[CandleBar],
    *,
    symbol: str,
    interval: str,
    sma_period: int = 20,
    max_candles: int = MAX_CANDLES,
) -> go.Figure:
    """Candlesticks with SMA and VWAP overlays and volume bars below, for the API's candles.

    Only the last `max_candles` (at most MAX_CANDLES) are drawn. The SMA is computed over every
    candle given before that cut, so a caller that fetches `sma_period - 1` extra candles gets an
    SMA defined from the first visible candle. An empty (or unusable) list gives `empty_figure`.
    """
    rows = _usable(candles)
    if not rows:
        return empty_figure(
            symbol, interval, f"No {interval} candles for {symbol} in this range yet"
        )
    keep = max(1, min(max_candles, MAX_CANDLES))
    closes = [_float(c.close) for c in rows]
    sma_all = sma(closes, sma_period)
    rows, sma_values = rows[-keep:], sma_all[-keep:]

    x = [_x(c.ts) for c in rows]
    opens = [_float(c.open) for c in rows]
    closes = [_float(c.close) for c in rows]
    volumes = [_float(c.volume) or 0.0 for c in rows]
    vwaps = [_float(c.vwap) for c in rows]
    bar_colors = [
        UP_COLOR if (c or 0.0) >= (o or 0.0) else DOWN_COLOR
        for o, c in zip(opens, closes, strict=True)
    ]

    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.75, 0.25]
    )
    price_pane = (
        go.Candlestick(
            x=x,
            open=opens,
            high=[_float(c.high) for c in rows],
            low=[_float(c.low) for c in rows],
            close=closes,
            name=symbol,
            increasing={"line": {"color": UP_COLOR}, "fillcolor": UP_COLOR},
            decreasing={"line": {"color": DOWN_COLOR}, "fillcolor": DOWN_COLOR},
        ),
        _overlay(
            x,
            sma_values,
            name=f"SMA {sma_period}",
            mode="lines",
            line={"color": SMA_COLOR, "width": 1.5},
        ),
        _overlay(
            x,
            vwaps,
            name="VWAP",
            mode="lines+markers",
            line={"color": VWAP_COLOR, "width": 1, "dash": "dot"},
            marker={"size": 3, "color": VWAP_COLOR},
        ),
    )
    for trace in price_pane:
        fig.add_trace(trace, row=1, col=1)
    fig.add_trace(
        go.Bar(
            x=x,
            y=volumes,
            name="Volume",
            marker={"color": bar_colors, "line": {"width": 0}},
            opacity=0.7,
            showlegend=False,
        ),
        row=2,
        col=1,
    )
    _base_layout(fig, symbol, interval)
    fig.update_xaxes(rangeslider_visible=False, showgrid=True, gridcolor=GRID_COLOR)
    window = min_window(x, interval)
    if window is not None:
        fig.update_xaxes(range=window)
    fig.update_xaxes(title_text="UTC", row=2, col=1)
    fig.update_yaxes(showgrid=True, gridcolor=GRID_COLOR, side="right")
    fig.update_yaxes(title_text="Price", row=1, col=1)
    fig.update_yaxes(title_text="Volume", row=2, col=1)
    return fig
