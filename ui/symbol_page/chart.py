"""The Symbol page's chart: candles, SMA, VWAP and volume, redrawn every couple of seconds."""

from __future__ import annotations

import streamlit as st

from backend.settings import UiSettings
from ui.charts import candlestick_figure, empty_figure
from ui.symbol_page.fallback import failure_banner, last_good
from ui.symbol_page.fetch import fetch_candles, fetch_view
from ui.symbol_page.logic import chart_caption
from ui.symbol_view import candle_limit

CHART_EVERY_S = 2.0
CHART_PAUSE_KEY = "symbol_chart_paused"
CHART_FROZEN_KEY = "symbol_chart_frozen"  # (controls, figure, caption) last drawn, for the pause
CHART_CONFIG = {"displaylogo": False, "scrollZoom": True}


@st.fragment(run_every=CHART_EVERY_S)
def live_chart(
    settings: UiSettings, symbol: str, interval: str, range_key: str, sma_period: int
) -> None:
    """Candles + SMA + VWAP + volume, redrawn every couple of seconds unless paused.

    Streamlit 1.67 remounts a Plotly chart whose figure changed, so `uirevision` alone cannot keep
    a zoom across live refreshes; pausing re-sends the very figure last drawn, which keeps the
    chart mounted and the analyst's zoom and pan with it.
    """
    paused = st.toggle(
        "Pause chart",
        key=CHART_PAUSE_KEY,
        help="Freeze the chart to zoom and pan at leisure; metrics and tables stay live.",
    )
    identity = (symbol, interval, range_key, sma_period)
    frozen = st.session_state.get(CHART_FROZEN_KEY)
    if paused and frozen is not None and frozen[0] == identity:
        st.plotly_chart(frozen[1], key="symbol_chart", config=CHART_CONFIG)
        st.caption(f"{frozen[2]} · paused")
        return
    limit = candle_limit(range_key, interval)
    # sma_period − 1 extra candles, so the SMA is defined from the first candle on screen.
    result = fetch_candles(settings, symbol, interval, limit + sma_period - 1)
    shown = last_good("candles", (symbol, interval), result)
    failure_banner("Chart", result, shown, fetch_view(settings, symbol).error)
    if shown is None:
        figure = empty_figure(symbol, interval, "Waiting for the backend…")
    else:
        figure = candlestick_figure(
            shown.data.candles,
            symbol=symbol,
            interval=interval,
            sma_period=sma_period,
            max_candles=limit,
        )
    st.plotly_chart(figure, key="symbol_chart", config=CHART_CONFIG)
    caption = chart_caption(shown, interval, range_key, limit)
    if caption:
        st.caption(caption)
    st.session_state[CHART_FROZEN_KEY] = (identity, figure, caption)
