"""The Symbol page's "Create alert" expander: the compact rule form, prefilled with the symbol
and its last price when the page was drawn (the live panels move on; the form does not, so a
threshold being typed is never overwritten)."""

from __future__ import annotations

import streamlit as st

from backend.settings import UiSettings
from ui.alerts_page.form import rule_form
from ui.resources import get_live_feed
from ui.symbol_page.fetch import fetch_view


def current_price(settings: UiSettings, symbol: str) -> float | None:
    """The symbol's last price: the live feed's view, else the (cached) REST one."""
    view = get_live_feed(settings).snapshot().views.get(symbol) or fetch_view(settings, symbol).data
    return None if view is None else view.last_price


def create_alert(settings: UiSettings, symbol: str) -> None:
    """A collapsed expander holding the form for `symbol`; its last price is the threshold."""
    price = current_price(settings, symbol)
    with st.expander("Create alert", icon=":material/add_alert:"):
        st.caption(
            f"Alert on **{symbol}**; the threshold starts at its last price. "
            "Manage rules and see every firing on the Alerts page."
        )
        rule_form(settings, prefix=f"symbol_alert_{symbol}", symbol=symbol, value=price)
