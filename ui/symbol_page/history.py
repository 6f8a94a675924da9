"""The Symbol page's recent ticks: the last N stored, newest first, with a CSV download."""

from __future__ import annotations

import streamlit as st

from backend.settings import UiSettings
from ui.symbol_page.fallback import failure_banner, last_good
from ui.symbol_page.fetch import fetch_history, fetch_view
from ui.symbol_page.logic import history_caption
from ui.symbol_view import csv_filename, history_csv, history_frame, price_format

HISTORY_EVERY_S = 3.0


@st.fragment(run_every=HISTORY_EVERY_S)
def live_history(settings: UiSettings, symbol: str, limit: int) -> None:
    """The last `limit` stored ticks, newest first, with a CSV download of exactly those rows."""
    result = fetch_history(settings, symbol, limit)
    shown = last_good("history", (symbol, limit), result)
    failure_banner("History", result, shown, fetch_view(settings, symbol).error)
    if shown is None:
        return
    frame = history_frame(shown.data)
    if frame.empty:
        st.info(f"No stored ticks for {symbol} yet.", icon="⏳")
        return
    st.download_button(
        "Download CSV",
        data=lambda: history_csv(frame),  # built on click, not on every refresh
        file_name=csv_filename(symbol, shown.fetched_at),
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key="history_csv",  # a stable identity: the file name changes with every refresh
    )
    st.dataframe(
        frame,
        column_config={
            "ts": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
            "price": st.column_config.NumberColumn(
                "Price", format=price_format(frame["price"].iloc[0])
            ),
            "volume": st.column_config.NumberColumn("Volume"),
            "source": st.column_config.TextColumn("Source"),
            "seq": st.column_config.NumberColumn("Seq", format="%d"),
            "event_id": st.column_config.TextColumn("Event id"),
            "received_at": st.column_config.DatetimeColumn("Received (UTC)", format="HH:mm:ss.SSS"),
        },
        hide_index=True,
    )
    st.caption(history_caption(len(frame), shown.fetched_at))
