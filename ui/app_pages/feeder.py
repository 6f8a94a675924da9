"""Feeder page: steer the simulated exchanges and watch what they report.

Feeders poll `GET /feeder/config` every second and push `POST /feeder/status`; this page edits
the first and shows the second. The controls are one `st.form` outside the live fragment, so the
one-second refresh never resets what the user is typing, and one Apply sends ONE partial PUT with
only the fields the user changed (computed by `ui.feeder_panel.config_update`). Widget keys carry
a generation number: after a successful Apply the generation moves on and the form is rebuilt
from the config the API returned. The parts live in `ui.feeder_page`.
"""

from __future__ import annotations

import streamlit as st

from ui.feeder_page.controls import render_controls
from ui.feeder_page.live import live_status
from ui.resources import current_settings

st.title("Feeder")
_settings = current_settings()
render_controls(_settings)
st.header("Live status")
live_status(_settings)
