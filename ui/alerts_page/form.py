"""The create-alert form, on the Alerts page (every input) and on the Symbol page (compact:
the symbol fixed, its last price as the threshold).

One `st.form`: typing never reruns anything, and the live fragments never reset it. Widget keys
carry a generation that moves on after a rule is created, which empties the form; after a refusal
the inputs keep what the analyst typed and each error shows under the input it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time

import streamlit as st

from backend.settings import UiSettings
from ui.alerts_page.actions import (
    create_rule,
    errors_key,
    form_flash_key,
    form_key,
    generation_key,
)
from ui.alerts_text import (
    BARS,
    CONDITION_LABELS,
    CONDITIONS,
    FIELD_LABELS,
    FIELDS,
    TRIGGER_LABELS,
    TRIGGERS,
)

NUMBER_FORMAT = "%g"  # shows 65000 and 1.08345 alike; a fixed %.2f would round EURUSD


def _errors(slots: dict[str, list[str]], slot: str) -> None:
    """The reasons for one input, right under it."""
    for reason in slots.get(slot, ()):
        st.markdown(f":red[:material/error: {reason}]")


def rule_form(
    settings: UiSettings,
    *,
    prefix: str,
    symbol: str | None = None,
    symbols: Sequence[str] = (),
    value: float | None = None,
) -> None:
    """The create form. With `symbol`, the compact form for that symbol (the Symbol page);
    otherwise the full one with a symbol picker fed by `symbols`."""
    state = st.session_state
    generation = state.setdefault(generation_key(prefix), 0)
    slots: dict[str, list[str]] = state.get(errors_key(prefix)) or {}
    done = state.pop(form_flash_key(prefix), None)
    if done:
        st.success(done, icon=":material/check_circle:")

    def key(name: str) -> str:
        return form_key(prefix, generation, name)

    compact = symbol is not None
    with st.form(f"{prefix}_form_{generation}", border=not compact):
        if compact:
            name_col, field_col, cond_col = st.columns([3, 2, 2])
        else:
            name_col, sym_col, field_col, cond_col = st.columns([3, 2, 2, 2])
            with sym_col:
                options = list(dict.fromkeys(symbols))
                st.selectbox(
                    "Symbol",
                    options,
                    index=0 if options else None,
                    key=key("symbol"),
                    accept_new_options=True,
                    placeholder="Type a symbol",
                    help="Pick one the backend knows, or type a new one (upper case).",
                )
                _errors(slots, "symbol")
        with name_col:
            st.text_input(
                "Name",
                key=key("name"),
                max_chars=120,
                placeholder="Blank: what it watches",
            )
            _errors(slots, "name")
        with field_col:
            st.selectbox(
                "Field",
                FIELDS,
                key=key("field"),
                format_func=lambda f: FIELD_LABELS.get(f, f),
                help="A number of the symbol's view, or a data-quality flag (stale, gap opened).",
            )
            _errors(slots, "field")
        with cond_col:
            st.selectbox(
                "Condition",
                CONDITIONS,
                key=key("condition"),
                format_func=lambda c: CONDITION_LABELS.get(c, c),
                help="Crossings fire on the tick that crosses; above/below fire when it becomes "
                "true and re-arm when it stops being true.",
            )
            _errors(slots, "condition")

        value_col, value2_col, trigger_col, bar_col, cooldown_col = st.columns([2, 2, 2, 1, 1.4])
        with value_col:
            st.number_input(
                "Value", value=value, format=NUMBER_FORMAT, step=None, key=key("value"),
                help="The threshold; a channel's low edge. Flags need none.",
            )  # fmt: skip
            _errors(slots, "value")
        with value2_col:
            st.number_input(
                "Value 2 (channel high)", value=None, format=NUMBER_FORMAT, key=key("value2"),
                help="Only for 'enters channel' / 'exits channel'.",
            )  # fmt: skip
            _errors(slots, "value2")
        with trigger_col:
            st.selectbox(
                "Trigger", TRIGGERS, key=key("trigger"),
                format_func=lambda t: TRIGGER_LABELS.get(t, t),
            )  # fmt: skip
            _errors(slots, "trigger")
        with bar_col:
            st.selectbox("Bar", BARS, key=key("bar"), help="For 'once per bar' (UTC-aligned)")
            _errors(slots, "bar")
        with cooldown_col:
            st.number_input(
                "Cooldown (s)", min_value=0, max_value=7 * 86_400, value=60, step=10,
                key=key("cooldown_s"), help="For 'every time': at most one firing per cooldown.",
            )  # fmt: skip
            _errors(slots, "cooldown_s")

        if compact:
            in_app_col, url_col, secret_col = st.columns([2, 4, 3])
        else:
            date_col, time_col, enabled_col = st.columns([2, 2, 3], vertical_alignment="bottom")
            with date_col:
                st.date_input("Expires on (UTC)", value=None, key=key("expires_on"))
                _errors(slots, "expires_at")
            with time_col:
                st.time_input("at (UTC)", value=time(0, 0), key=key("expires_time"))
            with enabled_col:
                st.checkbox("Enabled", value=True, key=key("enabled"))
            in_app_col, url_col, secret_col = st.columns([2, 4, 3])
        with in_app_col:
            st.checkbox("Notify in the app", value=True, key=key("in_app"),
                        help="A toast on every page and a row in the history.")  # fmt: skip
            _errors(slots, "channels")
        with url_col:
            st.text_input("Webhook URL (optional)", key=key("webhook_url"),
                          placeholder="https://example.org/hook")  # fmt: skip
            _errors(slots, "webhook_url")
        with secret_col:
            st.text_input(
                "Webhook secret (optional)", key=key("webhook_secret"), type="password",
                help="At least 16 characters; deliveries carry X-Tickstream-Signature "
                "(HMAC-SHA256 of the body). Never shown again.",
            )  # fmt: skip
            _errors(slots, "webhook_secret")
        _errors(slots, "form")
        st.form_submit_button(
            "Create alert",
            type="primary",
            icon=":material/add_alert:",
            on_click=create_rule,
            args=(settings, prefix, generation, symbol),
        )
