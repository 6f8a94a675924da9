"""The replay form: symbols, the UTC range, the speed, and the backtest's rules.

One `st.form`: typing never reruns anything (a form input is sent with Start), and the live
panel, a fragment of its own, never resets it. Hence every input is always shown: the rules are
read only for a sandbox, and the inline rule's symbol defaults to the first symbol replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import streamlit as st

from backend.settings import UiSettings
from ui.alerts_page.fetch import fetch_rules
from ui.alerts_page.form import NUMBER_FORMAT
from ui.alerts_text import (
    CONDITION_LABELS,
    CONDITIONS,
    FIELD_LABELS,
    FIELDS,
    TRIGGER_LABELS,
    TRIGGERS,
)
from ui.replay_form import SPEED_HINT, error_lines
from ui.replay_page.actions import ERRORS_KEY, key, start
from ui.resources import fetch_symbols


def replay_form(settings: UiSettings) -> None:
    """The request form and its Start button; the API's refusals show by field name."""
    state = st.session_state
    known = fetch_symbols(settings)
    chosen = list(state.get(key("symbols"), []) or [])
    options = sorted({*known.symbols, *chosen})
    today = datetime.now(UTC).date()
    with st.form("replay_form", border=False):
        symbols_col, speed_col = st.columns([4, 1])
        symbols_col.multiselect(
            "Symbols",
            options,
            key=key("symbols"),
            accept_new_options=True,
            placeholder="Pick live symbols, or type any stored one",
            help="GET /symbols lists the live symbols; history may hold others: type them.",
        )
        speed_col.text_input("Speed", value="max", key=key("speed"), help=SPEED_HINT)
        from_col, from_t_col, to_col, to_t_col = st.columns(4)
        from_col.date_input(
            "From (UTC date)", value=today - timedelta(days=1), key=key("from_date")
        )
        from_t_col.time_input("From (UTC time)", value=time(0, 0), key=key("from_time"))
        to_col.date_input("To (UTC date)", value=today, key=key("to_date"))
        to_t_col.time_input("To (UTC time)", value=time(0, 0), key=key("to_time"))
        st.radio(
            "Alerts",
            ["off", "sandbox"],
            key=key("alerts"),
            horizontal=True,
            format_func=lambda a: "off" if a == "off" else "sandbox (backtest the rules below)",
            help="A sandbox evaluates the rules on the replay and lists what would have fired;"
            " nothing is ever delivered. With 'off', the rules below are ignored.",
        )
        _rules(settings, options)
        errors = state.get(ERRORS_KEY) or []
        if errors:
            st.error("  \n".join(error_lines(errors)), icon=":material/error:")
        st.form_submit_button("Start replay", type="primary", on_click=start, args=(settings,))


def _rules(settings: UiSettings, symbols: list[str]) -> None:
    """Stored rules (GET /alerts/rules) and/or one inline rule, for the sandbox."""
    rules = fetch_rules(settings)
    listed = rules.value or []
    names = {rule.id: f"{rule.name} ({rule.symbol})" for rule in listed}
    st.multiselect(
        "Stored rules",
        list(names),
        key=key("rule_ids"),
        format_func=lambda r: names.get(r, r),
        placeholder="None" if names else "No stored rules",
        help="Each must watch one of the symbols replayed.",
    )
    if rules.error is not None:
        st.caption(f"Stored rules unavailable: {rules.error}")
    st.checkbox("Add an inline rule", key=key("inline"), help="Backtested, never stored.")
    sym_col, field_col, cond_col, value_col, value2_col, trigger_col = st.columns(
        [1.3, 1.3, 1.3, 1, 1, 1.3]
    )
    sym_col.selectbox(
        "Rule symbol", symbols, key=key("rule_symbol"), index=None, accept_new_options=True,
        placeholder="First replayed",
    )  # fmt: skip
    field_col.selectbox(
        "Field", FIELDS, key=key("rule_field"), format_func=lambda f: FIELD_LABELS.get(f, f)
    )
    cond_col.selectbox(
        "Condition", CONDITIONS, key=key("rule_condition"),
        format_func=lambda c: CONDITION_LABELS.get(c, c),
    )  # fmt: skip
    value_col.number_input("Value", value=None, format=NUMBER_FORMAT, key=key("rule_value"))
    value2_col.number_input(
        "Value 2 (channel high)", value=None, format=NUMBER_FORMAT, key=key("rule_value2")
    )
    trigger_col.selectbox(
        "Trigger", TRIGGERS, key=key("rule_trigger"),
        format_func=lambda t: TRIGGER_LABELS.get(t, t),
    )  # fmt: skip
