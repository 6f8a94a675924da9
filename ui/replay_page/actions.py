"""The Replay page's button callbacks: Start (the form → `POST /replays`) and Pause / Resume /
Cancel. They run before the script, so the rerun already shows their outcome: the form's errors
by field name, the new replay selected, or a flash above the controls."""

from __future__ import annotations

from datetime import time
from typing import Any

import streamlit as st

from backend.core.replay import Control
from backend.settings import UiSettings
from ui.api_client import BackendError, BackendRejected
from ui.replay_form import InlineRule, ReplayForm, build_request
from ui.resources import get_backend_client

ERRORS_KEY = "replay_form_errors"  # list of {field, reason} for the form
FLASH_KEY = "replay_flash"  # (kind, message) above the controls
SELECTED_KEY = "replay_selected"  # the replay id the panel shows


def key(name: str) -> str:
    """A form widget's key."""
    return f"replay_form_{name}"


def read_form() -> ReplayForm:
    """The form's widgets as a `ReplayForm`."""
    state = st.session_state

    def value(name: str, default: Any = None) -> Any:
        return state.get(key(name), default)

    inline = None
    if value("inline", False):
        inline = InlineRule(
            symbol=value("rule_symbol") or "",
            field=value("rule_field", "last_price"),
            condition=value("rule_condition", "crosses_above"),
            value=value("rule_value"),
            value2=value("rule_value2"),
            trigger=value("rule_trigger", "once_per_bar"),
        )
    return ReplayForm(
        symbols=list(value("symbols", []) or []),
        from_date=value("from_date"),
        from_time=value("from_time", time(0, 0)),
        to_date=value("to_date"),
        to_time=value("to_time", time(0, 0)),
        speed=str(value("speed", "max") or ""),
        alerts=value("alerts", "off"),
        rule_ids=list(value("rule_ids", []) or []),
        inline=inline,
    )


def start(settings: UiSettings) -> None:
    """Validate as the API would, POST, select the new replay; errors stay by the form."""
    state = st.session_state
    request = build_request(read_form())
    if isinstance(request, list):
        state[ERRORS_KEY] = request
        return
    try:
        replay_id = get_backend_client(settings).start_replay(request)
    except BackendRejected as exc:
        state[ERRORS_KEY] = exc.fields or [{"field": "body", "reason": exc.message}]
        return
    except BackendError as exc:
        state[ERRORS_KEY] = [{"field": "backend", "reason": f"not started — {exc.message}"}]
        return
    state.pop(ERRORS_KEY, None)
    state[SELECTED_KEY] = replay_id
    state[FLASH_KEY] = ("success", f"Replay {replay_id[:8]} started.")


def control(settings: UiSettings, replay_id: str, action: Control) -> None:
    """Pause, resume or cancel; a refusal (the state moved on meanwhile) becomes a flash."""
    try:
        replay = get_backend_client(settings).control_replay(replay_id, action)
    except BackendError as exc:
        st.session_state[FLASH_KEY] = ("error", f"Could not {action} — {exc.message}")
        return
    st.session_state[FLASH_KEY] = ("info", f"Replay {replay.id[:8]}: {action} → {replay.state}.")
