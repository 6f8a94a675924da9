"""Live page: every symbol with its latest view, refreshed in place twice a second.

Only the fragment reruns on the timer (never the whole page). Each refresh reads the process's
LiveFeed snapshot (pushed over Redis pub/sub) and merges a REST snapshot that is at most a couple
of seconds old, so a session that missed events still catches up.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from backend.config import Settings
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
    watchlist_rows,
)

REFRESH_EVERY_S = 0.5

# Labels only: number formats come from the Styler, which Streamlit shows when a NumberColumn
# has no `format` (one fixed format cannot fit BTC and EURUSD prices).
COLUMN_CONFIG = {
    "symbol": st.column_config.TextColumn("Symbol", pinned=True),
    "last_price": st.column_config.NumberColumn("Last price"),
    "change_1m_pct": st.column_config.NumberColumn("Change 1m", help="Price change over 1 minute"),
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


def _render_feed_banner(snap: FeedSnapshot) -> None:
    if snap.connected:
        return
    if snap.last_error:
        st.warning(
            f"Live updates paused: cannot reach Redis ({snap.last_error}). Retrying…", icon="⚠️"
        )
    else:
        st.info("Connecting to the live feed…", icon="⏳")


@st.fragment(run_every=REFRESH_EVERY_S)
def live_watchlist(settings: Settings) -> None:
    """The self-refreshing part of the page: banners, the watchlist table, the feed status."""
    snap = get_live_feed(settings).snapshot()
    rest = fetch_rest_snapshot(settings)
    now = datetime.now(UTC)

    if rest.error:
        st.warning(f"Backend unavailable: {rest.error} Showing live updates only.", icon="⚠️")
    _render_feed_banner(snap)

    views = merge_views(rest.views, snap.views)
    if not any(views.values()):
        st.info("Waiting for ticks…", icon="⏳")
    if views:
        frame = pd.DataFrame(watchlist_rows(views, now), columns=list(WATCHLIST_COLUMNS))
        styled = frame.style.format(FORMATTERS, na_rep="—").map(
            change_color, subset=["change_1m_pct"]
        )
        st.dataframe(styled, column_config=COLUMN_CONFIG, hide_index=True, key="watchlist")
    st.caption(_feed_status(snap, now))


st.title("Live")
live_watchlist(current_settings())
