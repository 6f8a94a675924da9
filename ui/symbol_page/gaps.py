"""The Symbol page's sequence gaps: open ones first and loud, recently closed ones quieter."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from backend.settings import UiSettings
from ui.symbol_page.fallback import failure_banner, last_good
from ui.symbol_page.fetch import fetch_gaps, fetch_view
from ui.symbol_page.logic import open_gaps_message
from ui.symbol_view import CLOSED_GAP_COLUMNS, OPEN_GAP_COLUMNS, gap_rows
from ui.table_columns import times_of_day, whole_numbers

GAPS_EVERY_S = 3.0

GAP_COLUMN_CONFIG = {  # for both tables: each shows the columns it has
    "source": st.column_config.TextColumn("Source"),
    **whole_numbers(from_seq="From seq", to_seq="To seq", missing="Missing"),
    **times_of_day(detected_at="Detected (UTC)", closed_at="Closed (UTC)"),
    "open_for": st.column_config.TextColumn("Open for"),
    "lasted": st.column_config.TextColumn("Lasted"),
}


@st.fragment(run_every=GAPS_EVERY_S)
def live_gaps(settings: UiSettings, symbol: str) -> None:
    """Open gaps first and loud; recently closed ones below, quieter."""
    known = fetch_view(settings, symbol)
    if known.error is None and known.data is None:
        st.caption(f"No gap data: no ticks seen for {symbol} yet.")
        return
    result = fetch_gaps(settings, symbol)
    shown = last_good("gaps", (symbol,), result)
    failure_banner("Gaps", result, shown, known.error)
    if shown is None:
        return
    open_rows, closed_rows = gap_rows(shown.data, datetime.now(UTC))
    if open_rows:
        st.error(open_gaps_message(open_rows), icon="🕳️")
        st.dataframe(
            pd.DataFrame(open_rows, columns=list(OPEN_GAP_COLUMNS)),
            column_config=GAP_COLUMN_CONFIG,
            hide_index=True,
        )
    else:
        st.success("No open sequence gaps.", icon="✅")
    if closed_rows:
        st.caption("Recently closed")
        st.dataframe(
            pd.DataFrame(closed_rows, columns=list(CLOSED_GAP_COLUMNS)),
            column_config=GAP_COLUMN_CONFIG,
            hide_index=True,
        )
