"""The Replay page's figure: the replay's candles above the live candles of the same range, one
shared time axis, and what the sandboxed rules would have fired as markers on the replay's row.
Pure (no Streamlit, no I/O), unit-tested like `ui.charts`.

Two rows of one figure rather than two charts: zooming one zooms both, so a difference between
what the replay computed and what was live at the time lines up under the eye.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.core.alerts.firing import Firing
from backend.core.candles import CandleBar
from ui.alerts_text import CONDITION_LABELS, format_number, threshold_text
from ui.charts import DOWN_COLOR, GRID_COLOR, UP_COLOR, _float, _usable, _x, min_window

FIRING_COLOR = "#ab47bc"
REPLAY_ROW_TITLE = "Replay"
LIVE_ROW_TITLE = "Live (stored) — same range"
FIRINGS_TRACE = "Would have fired"
CHART_HEIGHT = 640


def _candles(rows: Sequence[CandleBar], name: str) -> go.Candlestick:
    return go.Candlestick(
        x=[_x(c.ts) for c in rows],
        open=[_float(c.open) for c in rows],
        high=[_float(c.high) for c in rows],
        low=[_float(c.low) for c in rows],
        close=[_float(c.close) for c in rows],
        name=name,
        increasing={"line": {"color": UP_COLOR}, "fillcolor": UP_COLOR},
        decreasing={"line": {"color": DOWN_COLOR}, "fillcolor": DOWN_COLOR},
    )


def firing_text(firing: Firing) -> str:
    """A marker's hover: the rule, what it watches, what was observed."""
    what = threshold_text(firing.condition, firing.value, firing.value2)
    condition = CONDITION_LABELS.get(firing.condition, firing.condition)
    return (
        f"{firing.rule_name}<br>{firing.field} {condition} {what}"
        f"<br>observed {format_number(firing.observed)} · {firing.tick.event_id}"
    )


def firing_points(
    firings: Sequence[Firing], symbol: str
) -> tuple[list[datetime | None], list[float], list[str]]:
    """x, y and hover of `symbol`'s firings: at the tick that fired, at its price (the observed
    value for a view field without a price, e.g. a flag)."""
    xs: list[datetime | None] = []
    ys: list[float] = []
    texts: list[str] = []
    for firing in firings:
        if firing.symbol != symbol:
            continue
        y = _float(firing.tick.price)
        xs.append(_x(firing.tick.ts))
        ys.append(y if y is not None else firing.observed)
        texts.append(firing_text(firing))
    return xs, ys, texts


def replay_figure(
    replayed: Sequence[CandleBar],
    live: Sequence[CandleBar],
    firings: Sequence[Firing],
    *,
    symbol: str,
    interval: str,
    replay_id: str,
) -> go.Figure:
    """Row 1: the replay's candles and its firings as markers; row 2: the live candles of the
    same range. Either row may be empty (a replay not started yet, a range the live side never
    stored): its row then says so instead of collapsing the figure."""
    replay_rows, live_rows = _usable(replayed), _usable(live)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=(f"{REPLAY_ROW_TITLE} · {symbol} {interval}", LIVE_ROW_TITLE),
    )  # fmt: skip
    fig.add_trace(_candles(replay_rows, f"{symbol} replay"), row=1, col=1)
    xs, ys, texts = firing_points(firings, symbol)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name=FIRINGS_TRACE,
            marker={
                "symbol": "triangle-down",
                "size": 12,
                "color": FIRING_COLOR,
                "line": {"width": 1, "color": "#ffffff"},
            },
            hovertext=texts,
            hoverinfo="text",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(_candles(live_rows, f"{symbol} live"), row=2, col=1)
    for row, rows, message in (
        (1, replay_rows, "No replayed candles yet"),
        (2, live_rows, "No stored candles in this range"),
    ):
        if not rows:
            fig.add_annotation(
                text=message, showarrow=False, row=row, col=1,
                xref="x domain", yref="y domain", x=0.5, y=0.5,
                font={"size": 14, "color": "#9e9e9e"},
            )  # fmt: skip
    fig.update_layout(
        uirevision=f"replay:{replay_id}:{symbol}:{interval}",
        height=CHART_HEIGHT,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "xanchor": "left", "x": 0},
    )
    fig.update_xaxes(rangeslider_visible=False, showgrid=True, gridcolor=GRID_COLOR)
    window = min_window([_x(c.ts) for c in replay_rows or live_rows], interval)
    if window is not None:
        fig.update_xaxes(range=window)
    fig.update_xaxes(title_text="UTC", row=2, col=1)
    fig.update_yaxes(showgrid=True, gridcolor=GRID_COLOR, side="right", title_text="Price")
    return fig
