"""The alert UI's button callbacks: create, pause/resume, edit, test-fire, delete.

They run before the script, so the rerun already shows their outcome: a flash for the rules
table, or the form's errors next to its inputs. Every call goes through the REST API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from backend.settings import UiSettings
from ui.alerts_page.fetch import forget_rules
from ui.alerts_view import (
    RuleForm,
    build_spec,
    edit_patch,
    errors_by_slot,
)
from ui.api_client import BackendError, BackendRejected
from ui.resources import get_backend_client

FLASH_KEY = "alerts_flash"  # (kind, message) for the rules table


def form_key(prefix: str, generation: int, name: str) -> str:
    return f"{prefix}_{generation}_{name}"


def errors_key(prefix: str) -> str:
    return f"{prefix}_errors"


def generation_key(prefix: str) -> str:
    return f"{prefix}_generation"


def form_flash_key(prefix: str) -> str:
    return f"{prefix}_flash"


def flash(kind: str, message: str) -> None:
    st.session_state[FLASH_KEY] = (kind, message)


def read_form(prefix: str, generation: int, symbol: str | None) -> RuleForm:
    """The create form's widgets as a `RuleForm` (a fixed `symbol` for the Symbol page's)."""
    state = st.session_state

    def value(name: str, default: Any = None) -> Any:
        return state.get(form_key(prefix, generation, name), default)

    return RuleForm(
        name=value("name", "") or "",
        symbol=symbol if symbol is not None else (value("symbol", "") or ""),
        field=value("field", "last_price"),
        condition=value("condition", "crosses_above"),
        value=value("value"),
        value2=value("value2"),
        trigger=value("trigger", "once_per_bar"),
        bar=value("bar", "1m"),
        cooldown_s=int(value("cooldown_s", 0) or 0),
        expires_on=value("expires_on"),
        expires_time=value("expires_time"),
        enabled=bool(value("enabled", True)),
        in_app=bool(value("in_app", True)),
        webhook_url=value("webhook_url", "") or "",
        webhook_secret=value("webhook_secret", "") or "",
    )


def create_rule(settings: UiSettings, prefix: str, generation: int, symbol: str | None) -> None:
    """Validate the form as the API would, POST it; errors go next to the inputs they name."""
    state = st.session_state
    spec = build_spec(read_form(prefix, generation, symbol), datetime.now(UTC))
    if isinstance(spec, list):
        state[errors_key(prefix)] = errors_by_slot(spec)
        return
    try:
        rule = get_backend_client(settings).create_alert_rule(spec)
    except BackendRejected as exc:
        slots = errors_by_slot(exc.fields)
        if not exc.fields:
            slots["form"] = [exc.message]
        state[errors_key(prefix)] = slots
        return
    except BackendError as exc:
        state[errors_key(prefix)] = {"form": [f"Not created — {exc.message}"]}
        return
    state.pop(errors_key(prefix), None)
    state[generation_key(prefix)] = generation + 1  # a fresh, empty form
    state[form_flash_key(prefix)] = f"Created alert “{rule.name}” ({rule.symbol})."
    forget_rules()


def _patch(settings: UiSettings, rule_id: str, patch: dict[str, Any], done: str) -> None:
    try:
        rule = get_backend_client(settings).update_alert_rule(rule_id, patch)
    except BackendRejected as exc:
        reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in exc.fields) or exc.message
        flash("error", f"Not saved — {reasons}")
        return
    except BackendError as exc:
        flash("error", f"Not saved — {exc.message}")
        return
    forget_rules()
    flash("success", f"“{rule.name}” {done}.")


def set_enabled(settings: UiSettings, rule_id: str, enabled: bool) -> None:
    _patch(settings, rule_id, {"enabled": enabled}, "resumed" if enabled else "paused")


def save_edit(settings: UiSettings, rule_id: str) -> None:
    """PATCH only what the edit form changed."""
    rules = st.session_state.get("alerts_rules_shown") or {}
    rule = rules.get(rule_id)
    if rule is None:
        flash("error", "That rule is no longer listed; reload the page.")
        return
    state = st.session_state
    changes = {
        name: state.get(f"alert_edit_{rule_id}_{rule.version}_{name}")
        for name in ("name", "value", "value2", "trigger", "bar", "cooldown_s")
    }
    patch = edit_patch(rule, {k: v for k, v in changes.items() if v is not None or k == "value"})
    if not patch:
        flash("info", f"Nothing to save: “{rule.name}” already reads like that.")
        return
    _patch(settings, rule_id, patch, "saved")


def test_fire(settings: UiSettings, rule_id: str, name: str) -> None:
    try:
        fired = get_backend_client(settings).test_alert_rule(rule_id)
    except BackendError as exc:
        flash("error", f"Test not sent — {exc.message}")
        return
    forget_rules()
    flash("success", f"Test firing of “{name}” sent on every channel (alert {fired.alert_id}).")


def delete_rule(settings: UiSettings, rule_id: str, name: str) -> None:
    try:
        deleted = get_backend_client(settings).delete_alert_rule(rule_id)
    except BackendError as exc:
        flash("error", f"Not deleted — {exc.message}")
        return
    forget_rules()
    flash("success" if deleted else "info", f"“{name}” {'deleted' if deleted else 'was gone'}.")
