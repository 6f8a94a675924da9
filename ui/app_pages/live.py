"""Live page: every symbol with its latest view, refreshed in place about three times a second.

Only the fragment reruns on the timer (never the whole page). Each refresh reads the process's
LiveFeed snapshot: the realtime gateway's snapshot plus every event since, so a fresh session has
every symbol at once, and after a gateway outage ("reconnecting…") the feed resumes from its
last event id and catches up by itself. No REST and no Redis here. Each symbol is a link to its
page (`/symbol?symbol=...`), opened in a new tab.

Why a link and not a row selection that calls `st.switch_page`: a page switch made by the server
races the fragment's refresh timer in the browser. A tick sent just before the switch reaches the
server while the Symbol page runs; Streamlit then runs that Live fragment against the Symbol page
and the browser wipes the page it has just drawn ("Bad delta path index"). A link is a fresh page
load, so no timer of this page can reach the next one; the watchlist also stays live in its tab.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from backend.settings import UiSettings
from ui.banners import feed_banner
from ui.live_feed import FeedSnapshot
from ui.resources import current_settings, get_live_feed
from ui.watchlist import (
    SYMBOL_IN_LINK,
    WATCHLIST_COLUMNS,
    change_color,
    format_age,
    format_pct,
    format_price,
    format_quantity,
    status_color,
    symbol_link,
    watchlist_rows,
)

REFRESH_EVERY_S = 0.3

# Labels only: number formats come from the Styler, which Streamlit shows when a NumberColumn
# has no `format` (one fixed format cannot fit BTC and EURUSD prices).
COLUMN_CONFIG = {
    "symbol": st.column_config.LinkColumn(
        "Symbol",
        pinned=True,
        display_text=SYMBOL_IN_LINK,
        help="Opens the symbol's page in a new tab",
    ),
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
    """One caption line about the stream, for whoever wonders why nothing moves."""
    if snap.connected:
        state = "connected"
    elif snap.reconnecting:
        state = "reconnecting…"
    else:
        state = "connecting…"
    count = snap.events_received
    parts = [f"Live feed {state}", f"{count:,} event{'' if count == 1 else 's'}"]
    if snap.last_event_at is not None:
        parts.append(f"last {max(0.0, (now - snap.last_event_at).total_seconds()):.1f} s ago")
    return " · ".join(parts)


@st.fragment(run_every=REFRESH_EVERY_S)
def live_watchlist(settings: UiSettings) -> None:
    """The self-refreshing part of the page: banners, the watchlist table, the feed status.

    Banners live in one container that is always there, so the table keeps its place in the
    fragment whatever banners come and go.
    """
    snap = get_live_feed(settings).snapshot()
    now = datetime.now(UTC)
    views = snap.views

    with st.container():
        feed_banner(snap)
        if not views:
            st.info("Waiting for ticks…", icon="⏳")
    if views:
        rows = watchlist_rows(views, now, settings.stale_after)
        frame = pd.DataFrame(rows, columns=list(WATCHLIST_COLUMNS))
        frame["symbol"] = frame["symbol"].map(symbol_link)
        styled = (
            frame.style.format(FORMATTERS, na_rep="—")
            .map(change_color, subset=["change_1m_pct"])
            .map(status_color, subset=["status"])
        )
        st.dataframe(styled, column_config=COLUMN_CONFIG, hide_index=True)
    st.caption(_feed_status(snap, now) + " · click a symbol to open its page")


st.title("Live")
live_watchlist(current_settings())
