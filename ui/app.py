"""Streamlit entry point: page config, the optional password gate, and navigation.

Run with `streamlit run ui/app.py`. Each page lives in `ui/app_pages/`; pages find each other
through `PAGES` (by `url_path`), so a link survives a title change.

The alert notifier (toasts of every `alert.fired`, the unread count) runs here, in the sidebar
before the page, so every page has it at the same place.
"""

from __future__ import annotations

import streamlit as st

from ui.alerts_page.notifier import alert_notifier
from ui.auth import password_gate
from ui.resources import current_settings

st.set_page_config(page_title="Tickstream", page_icon="📈", layout="wide")

PAGES = [
    st.Page(
        "app_pages/live.py",
        title="Live",
        icon=":material/monitoring:",
        default=True,  # served at "/" (a default page has no url_path of its own)
    ),
    st.Page(
        "app_pages/symbol.py",
        title="Symbol",
        icon=":material/candlestick_chart:",
        url_path="symbol",
    ),
    st.Page("app_pages/feeder.py", title="Feeder", icon=":material/tune:", url_path="feeder"),
    st.Page("app_pages/pipeline.py", title="Pipeline", icon=":material/lan:", url_path="pipeline"),
    st.Page("app_pages/replay.py", title="Replay", icon=":material/replay:", url_path="replay"),
    st.Page(
        "app_pages/alerts.py",
        title="Alerts",
        icon=":material/notifications:",
        url_path="alerts",
    ),
]
ALERTS_PAGE = PAGES[-1]

if password_gate(current_settings()):
    page = st.navigation(PAGES)
    with st.sidebar:
        alert_notifier(current_settings(), ALERTS_PAGE, page.url_path == ALERTS_PAGE.url_path)
    page.run()
