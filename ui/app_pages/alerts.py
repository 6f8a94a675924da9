"""Alerts page: create a rule, manage the rules (pause/resume, edit, test-fire, delete), and
watch every firing with the state of each delivery.

The create form and the rules table sit outside fragments (a refresh never resets what the
analyst types); the history refreshes in its own fragment and reruns the page when the rules
change. Being on this page marks every alert as read (the sidebar's unread count, see
`ui.alerts_page.notifier`). Everything goes through the REST API; nothing here touches Redis or
PostgreSQL. The parts live in `ui.alerts_page`.
"""

from __future__ import annotations

import streamlit as st

from ui.alerts_page.fetch import fetch_rules
from ui.alerts_page.form import rule_form
from ui.alerts_page.history import live_history
from ui.alerts_page.rules import FINGERPRINT_KEY, render_rules, show_flash
from ui.resources import current_settings, fetch_symbols, get_live_feed

ALL = "All"


def main() -> None:
    settings = current_settings()
    st.title("Alerts")
    rules = fetch_rules(settings)
    # The symbols the backend knows, and those the live feed saw (the backend may be down).
    known = [*fetch_symbols(settings).symbols, *get_live_feed(settings).snapshot().views]
    with st.expander("Create an alert", expanded=not rules.value, icon=":material/add_alert:"):
        rule_form(settings, prefix="alerts_create", symbols=sorted(set(known)))

    st.subheader("Rules")
    show_flash()
    if rules.error is not None:
        st.warning(f"Rules unavailable: {rules.error} Retrying…", icon=":material/warning:")
        # Matches no list of rules: the history's check reruns the page once they are back.
        st.session_state[FINGERPRINT_KEY] = ("unavailable",)
    else:
        render_rules(settings, rules.value)

    st.subheader("History")
    listed = rules.value or []
    symbol_col, rule_col = st.columns(2)
    symbols = sorted({rule.symbol for rule in listed} | set(known))
    symbol = symbol_col.selectbox("Symbol", [ALL, *symbols], key="alerts_history_symbol")
    names = {rule.id: f"{rule.name} ({rule.symbol})" for rule in listed}
    rule_id = rule_col.selectbox(
        "Rule", [ALL, *names], key="alerts_history_rule", format_func=lambda r: names.get(r, r)
    )
    live_history(
        settings,
        None if symbol == ALL else symbol,
        None if rule_id == ALL else rule_id,
    )


main()
