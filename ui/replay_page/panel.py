"""The replays, live: the list, and for the selected one its progress bar, its state and the
Pause / Resume / Cancel buttons its state allows, then its results. Refreshed every second in a
fragment of its own (a click reruns only the fragment)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.core.replay import Replay
from backend.settings import UiSettings
from ui.api_client import BackendError
from ui.replay_page.actions import FLASH_KEY, SELECTED_KEY, control
from ui.replay_page.results import results
from ui.replay_status import (
    controls,
    pick,
    progress_fraction,
    progress_text,
    replay_label,
    replay_rows,
)
from ui.resources import get_backend_client

PANEL_EVERY_S = 1.0
LIST_COLUMNS = {
    "id": st.column_config.TextColumn("Id"),
    "state": st.column_config.TextColumn("State"),
    "progress": st.column_config.ProgressColumn(
        "Progress", format="%.0f%%", min_value=0, max_value=100
    ),
    "applied": st.column_config.TextColumn("Ticks applied / total"),
    "rate": st.column_config.TextColumn("Rate"),
    "eta": st.column_config.TextColumn("ETA"),
    "firings": st.column_config.NumberColumn("Would have fired", format="%d"),
    "speed": st.column_config.TextColumn("Speed"),
    "symbols": st.column_config.TextColumn("Symbols"),
    "from": st.column_config.TextColumn("From"),
    "to": st.column_config.TextColumn("To"),
}


@st.fragment(run_every=PANEL_EVERY_S)
def replay_panel(settings: UiSettings) -> None:
    try:
        replays = get_backend_client(settings).list_replays()
    except BackendError as exc:
        st.warning(f"Replays unavailable: {exc.message} Retrying…", icon=":material/warning:")
        return
    if not replays:
        st.caption("No replays yet: start one above.")
        return
    st.dataframe(
        pd.DataFrame(replay_rows(replays)),
        column_config=LIST_COLUMNS,
        column_order=list(LIST_COLUMNS),
        hide_index=True,
        height=min(36 * (len(replays) + 1) + 2, 250),
        key="replay_list",
    )
    by_id = {r.id: r for r in replays}
    state = st.session_state
    state[SELECTED_KEY] = pick(replays, state.get(SELECTED_KEY))
    selected = st.selectbox(
        "Replay", list(by_id), key=SELECTED_KEY, format_func=lambda r: replay_label(by_id[r])
    )
    _selected(settings, by_id[selected])


def _selected(settings: UiSettings, replay: Replay) -> None:
    st.markdown(
        f"**State:** `{replay.state}`", help="queued → running ⇄ paused → done / cancelled / failed"
    )
    st.progress(progress_fraction(replay), text=progress_text(replay))
    allowed = controls(replay.state)
    pause_col, resume_col, cancel_col, _ = st.columns([1, 1, 1, 5])
    for col, label, action, enabled in (
        (pause_col, "Pause", "pause", allowed.pause),
        (resume_col, "Resume", "resume", allowed.resume),
        (cancel_col, "Cancel", "cancel", allowed.cancel),
    ):
        col.button(
            label, key=f"replay_{action}", disabled=not enabled, on_click=control,
            args=(settings, replay.id, action), width="stretch",
        )  # fmt: skip
    flash = state_flash()
    if flash is not None:
        getattr(st, flash[0])(flash[1])
    if replay.error:
        st.error(f"Failed: {replay.error}", icon=":material/error:")
    results(settings, replay)


def state_flash() -> tuple[str, str] | None:
    """The last action's outcome, shown once."""
    return st.session_state.pop(FLASH_KEY, None)
