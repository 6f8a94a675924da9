"""The firing history, newest first, one row per delivery with its status, attempts and last
error, refreshed every two seconds.

`GET /alerts/events` is the record (PostgreSQL); firings the live feed already brought but the
history does not hold yet are listed on top, so a firing shows within a second of its tick.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.settings import UiSettings
from ui.alerts_page.fetch import fetch_events, fetch_rules
from ui.alerts_page.rules import FINGERPRINT_KEY
from ui.alerts_view import (
    HISTORY_COLUMNS,
    history_rows,
    rules_fingerprint,
    status_style,
)
from ui.resources import get_live_feed

HISTORY_EVERY_S = 2.0
# Status next to what fired, so it shows without scrolling; the symbol is in "what" already.
SHOWN_COLUMNS = (
    "fired_at", "rule", "what", "channel", "status", "attempts", "last_error", "latency_ms",
    "test", "alert_id",
)  # fmt: skip

HISTORY_COLUMN_CONFIG = {
    "fired_at": st.column_config.DatetimeColumn("Fired (UTC)", format="YYYY-MM-DD HH:mm:ss.SSS"),
    "rule": st.column_config.TextColumn("Rule"),
    "symbol": st.column_config.TextColumn("Symbol"),
    "what": st.column_config.TextColumn("What"),
    "test": st.column_config.CheckboxColumn("Test"),
    "channel": st.column_config.TextColumn("Channel"),
    "status": st.column_config.TextColumn(
        "Status",
        help="pending · delivered · retrying · failed (refused, not retried) · dead (out of "
        "attempts) · recording (not in the history yet)",
    ),
    "attempts": st.column_config.NumberColumn("Attempts", format="%d"),
    "last_error": st.column_config.TextColumn("Last error"),
    "latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.0f"),
    "alert_id": st.column_config.TextColumn("Alert id"),
}


@st.fragment(run_every=HISTORY_EVERY_S)
def live_history(settings: UiSettings, symbol: str | None, rule_id: str | None) -> None:
    """The history table; reruns the page when the rules changed under the table above."""
    rules = fetch_rules(settings)
    drawn = st.session_state.get(FINGERPRINT_KEY)
    if rules.value is not None and drawn is not None and rules_fingerprint(rules.value) != drawn:
        st.rerun(scope="app")
    result = fetch_events(settings, symbol, rule_id)
    _, live = get_live_feed(settings).alert_snapshot()
    if result.error is not None:
        st.warning(
            f"History unavailable: {result.error} Showing firings received live; retrying…",
            icon=":material/warning:",
        )
    rows = history_rows(result.value or [], live, symbol=symbol, rule_id=rule_id)
    if not rows:
        st.caption("No firings yet.")
        return
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    frame["fired_at"] = pd.to_datetime(frame["fired_at"], utc=True, format="ISO8601")
    st.dataframe(
        frame.style.map(status_style, subset=["status"]),
        column_config=HISTORY_COLUMN_CONFIG,
        column_order=SHOWN_COLUMNS,
        hide_index=True,
    )
    firings = len({row["alert_id"] for row in rows})
    st.caption(f"{firings} firing{'' if firings == 1 else 's'} · newest first · updated live")
