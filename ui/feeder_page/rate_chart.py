"""The Feeder page's rate chart: target vs achieved TPS over the last few minutes."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from backend.settings import UiSettings
from ui.feeder_page.fetch import fetch_rate_history
from ui.feeder_panel import (
    choose_points,
    new_ring_buffer,
    rate_figure,
    rate_point_from_totals,
    rate_points_from_history,
    record_point,
)

CHART_MINUTES = 5
RING_KEY = "feeder_rate_points"  # this session's own TPS samples, when /stats/history is missing


def render_chart(settings: UiSettings, totals: dict[str, float] | None, now: datetime) -> None:
    """Target vs achieved TPS: the server's history when it has one, else this session's own
    samples (a ring buffer fed by every refresh's totals)."""
    buffer = st.session_state.get(RING_KEY)
    if buffer is None:
        buffer = st.session_state[RING_KEY] = new_ring_buffer()
    if totals is not None:
        record_point(buffer, rate_point_from_totals(totals, now))
    history = fetch_rate_history(settings, CHART_MINUTES)
    server_points = rate_points_from_history(history.value or [])
    points = choose_points(server_points, buffer)
    st.plotly_chart(
        rate_figure(points, now),
        key="feeder_rate_chart",
        config={"displaylogo": False},
    )
    if server_points:
        st.caption(f"Target vs achieved TPS, last {CHART_MINUTES} minutes (/stats/history).")
    else:
        st.caption(
            "Target vs achieved TPS as this page has seen them since it opened "
            "(the backend's /stats/history is not available)."
        )
