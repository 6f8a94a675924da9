"""Symbol page: one symbol in depth — live candles, its view W, recent ticks, sequence gaps.

The controls live outside fragments; symbol, interval, range and SMA period are mirrored in the
URL (`?symbol=BTCUSDT&interval=1m&range=1h&sma=20`), so a view can be shared and the Live page
can link here. Everything that moves refreshes in its own `st.fragment`, never the
whole page: the metrics twice a second (live feed first, REST catch-up merged in), the chart
every 2 s, gaps and history every 3 s. REST reads are cached for a second or two and shared by
all sessions, so N analysts do not multiply the backend's load. A failed read keeps showing the
last good data of this session under a banner that says how old it is, and retries by itself.
The parts live in `ui.symbol_page`.
"""

from __future__ import annotations

import streamlit as st

from ui.resources import current_settings
from ui.symbol_page.alert import create_alert
from ui.symbol_page.chart import live_chart
from ui.symbol_page.controls import render_controls
from ui.symbol_page.gaps import live_gaps
from ui.symbol_page.history import live_history
from ui.symbol_page.metrics import live_metrics
from ui.symbol_view import DEFAULT_HISTORY, HISTORY_MAX, HISTORY_MIN


def main() -> None:
    """Controls (outside fragments, mirrored in the URL), then the live panels."""
    settings = current_settings()
    st.title("Symbol")
    controls = render_controls(settings)
    if controls is None:
        return
    symbol = controls.symbol
    create_alert(settings, symbol)
    live_metrics(settings, symbol)
    live_chart(settings, symbol, controls.interval, controls.range_key, controls.sma_period)

    gaps_col, history_col = st.columns([2, 3])
    with gaps_col:
        st.subheader("Sequence gaps")
        live_gaps(settings, symbol)
    with history_col:
        st.subheader("Recent ticks")
        limit = int(
            st.number_input(
                "Ticks to show",
                min_value=HISTORY_MIN,
                max_value=HISTORY_MAX,
                value=DEFAULT_HISTORY,
                step=100,
                key="history_limit",
            )
            or DEFAULT_HISTORY
        )
        live_history(settings, symbol, limit)


main()
