"""The Feeder page's self-refreshing part, redrawn every second without touching the form."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from backend.settings import UiSettings
from ui.feeder_page.fetch import fetch_config, fetch_status
from ui.feeder_page.form_state import BASE_KEY
from ui.feeder_page.rate_chart import render_chart
from ui.feeder_page.status import config_line, render_status

REFRESH_EVERY_S = 1.0


@st.fragment(run_every=REFRESH_EVERY_S)
def live_status(settings: UiSettings) -> None:
    """The self-refreshing part: config badges, per-feeder status, totals, the rate chart."""
    now = datetime.now(UTC)
    config = fetch_config(settings)
    base = st.session_state.get(BASE_KEY)
    if config.value is not None and base is None:
        st.rerun(scope="app")  # the backend is back: build the controls
    status = fetch_status(settings)
    error = status.error or config.error
    if error:
        st.warning(f"Live status unavailable: {error} Retrying every second.", icon="⚠️")
    if config.value is not None:
        config_line(config.value, base, now)
    totals = render_status(status.value, now) if status.value is not None else None
    st.subheader("Rate")
    render_chart(settings, totals, now)
