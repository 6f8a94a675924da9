"""Streamlit entry point: page config and navigation; each page lives in `ui/app_pages/`.

Run with `streamlit run ui/app.py`. New pages (Symbol, Feeder, Pipeline…) are added to `PAGES`.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Tickstream", page_icon="📈", layout="wide")

PAGES = [
    st.Page("app_pages/live.py", title="Live", icon=":material/monitoring:", default=True),
]

st.navigation(PAGES).run()
