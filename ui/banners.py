"""Banners every live page shows the same way, so an outage reads alike everywhere."""

from __future__ import annotations

import streamlit as st

from ui.live_feed import FeedSnapshot


def feed_banner(snap: FeedSnapshot) -> None:
    """Nothing while the live feed is connected; otherwise why live updates are paused.

    While it reconnects the page keeps the last views it had: the gateway replays what was
    missed (or sends a fresh snapshot) as soon as the feed is back.
    """
    if snap.connected:
        return
    if snap.reconnecting:
        reason = f" ({snap.last_error})" if snap.last_error else ""
        st.warning(
            f"Live feed reconnecting… the realtime gateway is unreachable{reason}. Showing the"
            " last values received; they catch up once it is back.",
            icon="⚠️",
        )
    else:
        st.info("Connecting to the live feed…", icon="⏳")
