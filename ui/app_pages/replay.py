"""Replay page: run stored history again through calc (and sandboxed alert rules), watch it go,
pause / resume / cancel it, and compare what it computed with what was live.

The form sits outside fragments (a refresh never resets what the analyst types); the replays
list, the selected replay's progress and controls and its results refresh every second in one
fragment. Everything goes through the REST API (`/replays`). The parts live in `ui.replay_page`.
"""

from __future__ import annotations

import streamlit as st

from ui.replay_page.form import replay_form
from ui.replay_page.panel import replay_panel
from ui.resources import current_settings


def main() -> None:
    settings = current_settings()
    st.title("Replay")
    with st.expander("New replay", expanded=True, icon=":material/history:"):
        replay_form(settings)
    st.subheader("Replays")
    replay_panel(settings)


main()
