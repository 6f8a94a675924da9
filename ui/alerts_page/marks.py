"""What a session remembers about the live feed's alerts: where it started, what it has read
(the Alerts page seen), what it has toasted. Kept in session state (server-side)."""

from __future__ import annotations

import streamlit as st

from ui.alerts_marks import (
    AlertMarks,
    rebase,
    start_marks,
)

MARKS_KEY = "alert_marks"


def load_marks(alerts_received: int) -> AlertMarks:
    """This session's marks; a new session starts at the feed's current count (older firings
    are history, shown on the Alerts page, not news)."""
    marks = st.session_state.get(MARKS_KEY)
    if not isinstance(marks, AlertMarks):
        marks = start_marks(alerts_received)
    return rebase(marks, alerts_received)


def save_marks(marks: AlertMarks) -> None:
    st.session_state[MARKS_KEY] = marks
