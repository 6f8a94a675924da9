"""Banners every live page shows the same way, so an outage reads alike everywhere."""

from __future__ import annotations

import streamlit as st

from ui.live_feed import FeedSnapshot


def feed_banner(snap: FeedSnapshot) -> None:
    """Nothing while the live feed is connected; otherwise why live updates are paused."""
    if snap.connected:
        return
    if snap.last_error:
        st.warning(
            f"Live updates paused: cannot reach Redis ({snap.last_error}). Retrying…", icon="⚠️"
        )
    else:
        st.info("Connecting to the live feed…", icon="⏳")
