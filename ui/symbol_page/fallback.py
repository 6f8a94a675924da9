"""A failed read keeps showing this session's last good data, under a banner that says how old
it is: a blip must not blank a panel, and stale data must not pass for live."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.symbol_page.logic import clock
from ui.symbol_view import Fetched

LAST_GOOD_KEY = "symbol_page_last_good"


def last_good(slot: str, key: tuple[Any, ...], result: Fetched) -> Fetched | None:
    """This session's newest successful read of `slot` for `key`: a blip must not blank a panel."""
    store: dict[str, tuple[tuple[Any, ...], Fetched]] = st.session_state.setdefault(
        LAST_GOOD_KEY, {}
    )
    if result.error is None:
        store[slot] = (key, result)
        return result
    held = store.get(slot)
    return held[1] if held is not None and held[0] == key else None


def failure_banner(
    what: str, result: Fetched, shown: Fetched | None, headline_error: str | None
) -> None:
    """Say what failed and how old the data on screen is (honest about staleness).

    When the cause is the one the metrics banner already shows (backend unreachable), a quiet
    caption is enough: one loud banner per outage keeps the page calm.
    """
    if result.error is None:
        return
    age = f"showing data from {clock(shown.fetched_at)}" if shown is not None else "no data yet"
    if result.error == headline_error:
        st.caption(f":material/cloud_off: {what} paused while the backend is unavailable; {age}.")
    else:
        st.warning(f"{what} not updated: {result.error} ({age}; retrying…)", icon="⚠️")
