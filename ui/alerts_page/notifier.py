"""On every page: each `alert.fired` the live feed receives shows once as a toast, and the
sidebar says how many alerts fired since this session last looked at the Alerts page.

`ui/app.py` calls `alert_notifier` in the sidebar before it runs the page, so the fragment sits
at the same place on every page (a page switch never finds a timer of the previous page's
fragments there). The sidebar entry is a link (`st.page_link`), never a server-side switch.
"""

from __future__ import annotations

import streamlit as st

from backend.settings import UiSettings
from ui.alerts_marks import (
    mark_read,
    to_toast,
    unread_count,
    unread_label,
)
from ui.alerts_page.marks import load_marks, save_marks
from ui.alerts_text import (
    toast_text,
)
from ui.resources import get_live_feed

NOTIFY_EVERY_S = 0.5
MAX_TOASTS = 5  # per refresh; a burst beyond that is summed up in one more toast


@st.fragment(run_every=NOTIFY_EVERY_S)
def alert_notifier(settings: UiSettings, alerts_page: st.Page, on_alerts_page: bool) -> None:
    """Toast the new firings; show the unread count as a link to the Alerts page."""
    received, alerts = get_live_feed(settings).alert_snapshot()
    marks = load_marks(received)
    fresh, marks = to_toast(alerts, marks)
    for firing in fresh[-MAX_TOASTS:]:
        st.toast(toast_text(firing), icon=":material/notifications_active:", duration="long")
    if len(fresh) > MAX_TOASTS:
        more = len(fresh) - MAX_TOASTS
        st.toast(
            f"…and {more} more alert{'' if more == 1 else 's'}",
            icon=":material/notifications_active:",
        )
    if on_alerts_page:
        marks = mark_read(marks, received)
    save_marks(marks)
    count = unread_count(alerts, received, marks.read_upto)
    st.page_link(
        alerts_page,
        label=unread_label(count) if count else "No unread alerts",
        icon=":material/notifications_active:" if count else ":material/notifications:",
    )
