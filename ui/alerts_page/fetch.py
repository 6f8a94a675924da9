"""The alert pages' backend reads, shared by every session of this process for a second, so N
analysts do not multiply the backend's load; failures are cached too (as the error sentence).

Only `backend.core` models and builtins go into the cache (see `ui.resources.fetch_or_error`).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend.settings import UiSettings
from ui.feeder_panel import Fetched
from ui.resources import BACKEND_HASH_FUNCS, FetchResult, fetch_or_error, get_backend_client

RULES_TTL_S = 1.0
EVENTS_TTL_S = 1.0
HISTORY_LIMIT = 200

_CACHE: dict[str, Any] = {
    "max_entries": 64,
    "show_spinner": False,
    "hash_funcs": BACKEND_HASH_FUNCS,
}


@st.cache_data(ttl=RULES_TTL_S, **_CACHE)
def _rules(settings: UiSettings, symbol: str | None) -> FetchResult:
    return fetch_or_error(lambda: get_backend_client(settings).list_alert_rules(symbol))


@st.cache_data(ttl=EVENTS_TTL_S, **_CACHE)
def _events(settings: UiSettings, symbol: str | None, rule_id: str | None) -> FetchResult:
    client = get_backend_client(settings)
    return fetch_or_error(
        lambda: client.list_alert_events(symbol=symbol, rule_id=rule_id, limit=HISTORY_LIMIT).events
    )


def fetch_rules(settings: UiSettings, symbol: str | None = None) -> Fetched:
    """`GET /alerts/rules[?symbol=]` → `list[AlertRuleOut]`, newest first."""
    return Fetched(*_rules(settings, symbol))


def fetch_events(
    settings: UiSettings, symbol: str | None = None, rule_id: str | None = None
) -> Fetched:
    """`GET /alerts/events` → `list[AlertEvent]`, newest first."""
    return Fetched(*_events(settings, symbol, rule_id))


def forget_rules() -> None:
    """Drop the shared reads after a change, so this run shows it (other sessions within 1 s)."""
    _rules.clear()
    _events.clear()
