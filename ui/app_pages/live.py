"""Live page: every symbol with its latest view, refreshed in place about three times a second.

Only the fragment reruns on the timer (never the whole page). Each refresh reads the process's
LiveFeed snapshot (pushed over Redis pub/sub) and merges a REST snapshot that is at most a couple
of seconds old, so a session that missed events still catches up. Selecting a row opens the
symbol's page (`/symbol?symbol=...`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from backend.settings import UiSettings
from ui.banners import feed_banner
from ui.live_feed import FeedSnapshot
from ui.resources import current_settings, fetch_rest_snapshot, get_live_feed
from ui.watchlist import (
    WATCHLIST_COLUMNS,
    change_color,
    format_age,
    format_pct,
    format_price,
    format_quantity,
    merge_views,
    status_color,
    watchlist_rows,
)

REFRESH_EVERY_S = 0.3
SYMBOL_PAGE = "app_pages/symbol.py"
TABLE_KEY = "watchlist"
ROW_SYMBOLS_KEY = "watchlist_row_symbols"  # the symbol of each row, as last drawn
OPEN_SYMBOL_KEY = "watchlist_open_symbol"  # set by a row selection, consumed by the fragment

# Labels only: number formats come from the Styler, which Streamlit shows when a NumberColumn
# has no `format` (one fixed format cannot fit BTC and EURUSD prices).
COLUMN_CONFIG = {
    "symbol": st.column_config.TextColumn("Symbol", pinned=True),
    "status": st.column_config.TextColumn(
        "Status", help="live · stale (no tick for STALE_AFTER) · gap (sequence numbers missing)"
    ),
    "last_price": st.column_config.NumberColumn("Last price"),
    "change_1m_pct": st.column_config.NumberColumn("Change 1m", help="Price change over 1 minute"),
    "trend": st.column_config.LineChartColumn("Last 10", help="The last 10 prices, oldest first"),
    "sma_10": st.column_config.NumberColumn("SMA-10", help="Mean of the last 10 prices"),
    "vwap_1m": st.column_config.NumberColumn("VWAP-1m", help="Volume-weighted price, 1 minute"),
    "volume_1m": st.column_config.NumberColumn("Volume 1m"),
    "trades_1m": st.column_config.NumberColumn("Trades 1m"),
    "ticks_total": st.column_config.NumberColumn("Ticks total"),
    "age_s": st.column_config.NumberColumn("Last tick", help="Time since the last tick"),
}

FORMATTERS = {
    "last_price": format_price,
    "change_1m_pct": format_pct,
    "sma_10": format_price,
    "vwap_1m": format_price,
    "volume_1m": format_quantity,
    "trades_1m": lambda value: format_quantity(value, 0),
    "ticks_total": lambda value: format_quantity(value, 0),
    "age_s": format_age,
}


def _feed_status(snap: FeedSnapshot, now: datetime) -> str:
    """One caption line about the subscription, for whoever wonders why nothing moves."""
    state = "connected" if snap.connected else "disconnected"
    count = snap.events_received
    parts = [f"Live feed {state}", f"{count:,} event{'' if count == 1 else 's'}"]
    if snap.last_event_at is not None:
        parts.append(f"last {max(0.0, (now - snap.last_event_at).total_seconds()):.1f} s ago")
    return " · ".join(parts)


@st.fragment(run_every=REFRESH_EVERY_S)
def live_watchlist(settings: UiSettings) -> None:
    """The self-refreshing part of the page: banners, the watchlist table, the feed status.

    A row selection hands over to a full run before anything is drawn (see
    `open_selected_symbol`). Banners live in one container that is always there, so the table
    keeps its place in the fragment whatever banners come and go.
    """
    if st.session_state.get(OPEN_SYMBOL_KEY):
        st.rerun(scope="app")  # the page switch happens in a full run, see `open_selected_symbol`

    snap = get_live_feed(settings).snapshot()
    rest = fetch_rest_snapshot(settings)
    now = datetime.now(UTC)
    views = merge_views(rest.views, snap.views)

    with st.container():
        if rest.error:
            st.warning(f"Backend unavailable: {rest.error} Showing live updates only.", icon="⚠️")
        feed_banner(snap)
        if not any(views.values()):
            st.info("Waiting for ticks…", icon="⏳")
    if views:
        rows = watchlist_rows(views, now, settings.stale_after)
        frame = pd.DataFrame(rows, columns=list(WATCHLIST_COLUMNS))
        styled = (
            frame.style.format(FORMATTERS, na_rep="—")
            .map(change_color, subset=["change_1m_pct"])
            .map(status_color, subset=["status"])
        )
        st.session_state[ROW_SYMBOLS_KEY] = [row["symbol"] for row in rows]
        st.dataframe(
            styled,
            column_config=COLUMN_CONFIG,
            hide_index=True,
            key=TABLE_KEY,
            on_select=_remember_selected_symbol,
            selection_mode="single-row",
        )
    st.caption(_feed_status(snap, now) + " · select a row to open the symbol")


def _remember_selected_symbol() -> None:
    """on_select callback: note the chosen symbol; the fragment then opens its page.

    Navigating only on the change (not on every run that still has a selection) means coming back
    to this page never bounces the analyst straight back to the symbol.
    """
    state = st.session_state.get(TABLE_KEY)
    selection = state.get("selection", {}) if isinstance(state, dict) else {}
    rows = list(selection.get("rows", []) if isinstance(selection, dict) else [])
    symbols = st.session_state.get(ROW_SYMBOLS_KEY, [])
    if rows and 0 <= rows[0] < len(symbols):
        st.session_state[OPEN_SYMBOL_KEY] = symbols[rows[0]]


def open_selected_symbol() -> None:
    """Open the symbol chosen in the table, before the page draws anything.

    The switch is made in a full run, not in the fragment: a fragment run that switches page leaves
    the browser believing it is still on Live, so the table's refresh timer can fire once more; the
    stale run that follows makes the browser wipe the Symbol page it has just drawn.
    """
    target = st.session_state.pop(OPEN_SYMBOL_KEY, None)
    if target:
        st.switch_page(SYMBOL_PAGE, query_params={"symbol": target})


open_selected_symbol()
st.title("Live")
live_watchlist(current_settings())
