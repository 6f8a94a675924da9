"""The Feeder page's callbacks: Apply, Reload form, Market open, Cancel burst.

They run before the script, so the rerun already shows their outcome (left as a flash). Apply
sends ONE partial PUT with only the fields the user changed (`ui.feeder_panel.config_update`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from backend.settings import UiSettings
from ui.api_client import BackendError
from ui.feeder_page.fetch import fetch_config, forget_config
from ui.feeder_page.form_state import BASE_KEY, flash, set_base, widget_key
from ui.feeder_page.logic import burst_outcome, form_values
from ui.feeder_panel import (
    CANCEL_BURST,
    burst_update,
    config_update,
    describe_update,
    form_fields,
)
from ui.resources import get_backend_client


def apply_form(settings: UiSettings, generation: int) -> None:
    base = st.session_state.get(BASE_KEY)
    if base is None:
        return
    state = st.session_state

    def value(name: str) -> Any:
        return state[widget_key(generation, name)]

    update = config_update(base, form_values(base, value))
    if not update:
        flash("info", f"Nothing to apply: the form matches config v{base.get('version')}.")
        return
    new = _put_config(settings, update, failed="Not applied")
    if new is None:
        return
    set_base(new, rebuild=True)
    flash("success", f"Applied config v{new.get('version')}: {describe_update(base, update)}.")


def reload_form(settings: UiSettings) -> None:
    forget_config()
    fetched = fetch_config(settings)
    if fetched.value is None:
        flash("error", f"Could not reload the config — {fetched.error}")
        return
    set_base(fetched.value, rebuild=True)
    flash("info", f"Form reloaded from config v{fetched.value.get('version')}.")


def _put_config(settings: UiSettings, update: dict[str, Any], failed: str) -> dict[str, Any] | None:
    """PUT `update` and return the new config, forgetting the cached one so this rerun reads
    it fresh; or flash "`failed` — <why>" and return None."""
    try:
        new = get_backend_client(settings).put_feeder_config(update)
    except BackendError as exc:
        flash("error", f"{failed} — {exc.message}")
        return None
    forget_config()
    return new


def _send_burst(settings: UiSettings, update: dict[str, Any]) -> None:
    new = _put_config(settings, update, failed="Burst not changed")
    if new is None:
        return
    base = st.session_state.get(BASE_KEY)
    if base is not None and form_fields(new) == form_fields(base):
        set_base(new, rebuild=False)  # only the burst moved: keep the user's edits
    flash(*burst_outcome(update, new, datetime.now(UTC)))


def start_burst(settings: UiSettings) -> None:
    state = st.session_state
    _send_burst(
        settings, burst_update(state["feeder_burst_multiplier"], state["feeder_burst_seconds"])
    )


def cancel_burst(settings: UiSettings) -> None:
    _send_burst(settings, dict(CANCEL_BURST))
