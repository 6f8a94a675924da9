"""The rules table: one row per rule with what it watches, how often it may fire, where it
notifies and its state, and its buttons (pause/resume, edit, test-fire, delete).

Drawn outside the live fragments (a row's edit form must not be reset by a refresh); the history
fragment reruns the page when the rules themselves change (a `once` rule pausing itself, another
analyst's edit), see `ui.alerts_page.history`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from backend.core.alerts.rules import CHANNEL_CONDITIONS, AlertRuleOut
from backend.settings import UiSettings
from ui.alerts_page.actions import (
    FLASH_KEY,
    delete_rule,
    save_edit,
    set_enabled,
    test_fire,
)
from ui.alerts_page.form import NUMBER_FORMAT
from ui.alerts_text import (
    BARS,
    TRIGGER_LABELS,
    TRIGGERS,
    rule_summary,
    trigger_summary,
)
from ui.alerts_view import (
    channels_summary,
    rule_state,
    rules_fingerprint,
)

SHOWN_KEY = "alerts_rules_shown"  # id → the rule as drawn (what an edit diffs against)
FINGERPRINT_KEY = "alerts_rules_fingerprint"
STATE_BADGES = {
    "active": ("green", ":material/notifications_active:"),
    "paused": ("gray", ":material/pause_circle:"),
    "expired": ("orange", ":material/schedule:"),
}


def show_flash() -> None:
    pending = st.session_state.pop(FLASH_KEY, None)
    if pending is None:
        return
    kind, message = pending
    {"success": st.success, "error": st.error}.get(kind, st.info)(message)


def render_rules(settings: UiSettings, rules: list[AlertRuleOut]) -> None:
    """Every rule with its buttons; remembers what it drew for edits and the refresh check."""
    st.session_state[SHOWN_KEY] = {rule.id: rule for rule in rules}
    st.session_state[FINGERPRINT_KEY] = rules_fingerprint(rules)
    if not rules:
        st.info(
            "No alert rules yet: create one above, or from a symbol's page.",
            icon=":material/notifications_off:",
        )
        return
    now = datetime.now(UTC)
    for rule in rules:
        _rule_row(settings, rule, now)


def _rule_row(settings: UiSettings, rule: AlertRuleOut, now: datetime) -> None:
    state = rule_state(rule, now)
    color, icon = STATE_BADGES[state]
    with st.container(border=True, key=f"alert_rule_{rule.id}"):
        info, badge = st.columns([8, 1], vertical_alignment="center")
        with info:
            st.markdown(f"**{rule.name}** · `{rule.symbol}`")
            notes = [
                rule_summary(rule.field, rule.condition, rule.value, rule.value2),
                trigger_summary(rule.trigger, rule.bar, rule.cooldown_s),
                channels_summary(rule),
            ]
            if rule.expires_at is not None:
                notes.append(f"expires {rule.expires_at:%Y-%m-%d %H:%M} UTC")
            st.caption(" · ".join(notes))
        badge.badge(state, icon=icon, color=color)
        actions = st.container(horizontal=True, gap="small")
        actions.button(
            "Resume" if not rule.enabled else "Pause",
            key=f"alert_toggle_{rule.id}",
            icon=":material/play_arrow:" if not rule.enabled else ":material/pause:",
            on_click=set_enabled,
            args=(settings, rule.id, not rule.enabled),
        )
        with actions.popover("Edit", icon=":material/edit:"):
            _edit_form(settings, rule)
        actions.button(
            "Test",
            key=f"alert_test_{rule.id}",
            icon=":material/send:",
            on_click=test_fire,
            args=(settings, rule.id, rule.name),
            help="Fire once now, marked test, through every channel of the rule",
        )
        with actions.popover("Delete", icon=":material/delete:"):
            st.write(f"Delete “{rule.name}”? Its history stays.")
            st.button(
                "Delete for good",
                key=f"alert_delete_{rule.id}",
                type="primary",
                on_click=delete_rule,
                args=(settings, rule.id, rule.name),
            )


def _edit_form(settings: UiSettings, rule: AlertRuleOut) -> None:
    """Name, threshold(s) and trigger; keyed by the rule's version, so a saved edit starts the
    next one from the stored rule."""

    def key(name: str) -> str:
        return f"alert_edit_{rule.id}_{rule.version}_{name}"

    with st.form(f"alert_edit_form_{rule.id}_{rule.version}", border=False):
        st.text_input("Name", value=rule.name, key=key("name"), max_chars=120)
        if rule.field not in ("stale", "gap_opened"):
            st.number_input("Value", value=rule.value, format=NUMBER_FORMAT, key=key("value"))
        if rule.condition in CHANNEL_CONDITIONS:
            st.number_input(
                "Value 2 (channel high)", value=rule.value2, format=NUMBER_FORMAT, key=key("value2")
            )
        st.selectbox(
            "Trigger",
            TRIGGERS,
            index=TRIGGERS.index(rule.trigger),
            key=key("trigger"),
            format_func=lambda t: TRIGGER_LABELS.get(t, t),
        )
        st.selectbox("Bar", BARS, index=BARS.index(rule.bar), key=key("bar"))
        st.number_input(
            "Cooldown (s)", min_value=0, max_value=7 * 86_400, value=rule.cooldown_s,
            key=key("cooldown_s"),
        )  # fmt: skip
        st.form_submit_button("Save", type="primary", on_click=save_edit, args=(settings, rule.id))
