"""The Feeder page's backend reads, shared between sessions for a second.

Failures are cached too (as the error sentence), so a dead backend costs one attempt per TTL
instead of one per session per refresh.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend.settings import UiSettings
from ui.feeder_panel import Fetched
from ui.resources import BACKEND_HASH_FUNCS, FetchResult, fetch_or_error, get_backend_client

CONFIG_TTL_S = 1.0  # config and status are shared by every session for this long
HISTORY_TTL_S = 2.0

_CACHE: dict[str, Any] = {
    "max_entries": 16,
    "show_spinner": False,
    "hash_funcs": BACKEND_HASH_FUNCS,
}


@st.cache_data(ttl=CONFIG_TTL_S, **_CACHE)
def _config(settings: UiSettings) -> FetchResult:
    return fetch_or_error(get_backend_client(settings).get_feeder_config)


@st.cache_data(ttl=CONFIG_TTL_S, **_CACHE)
def _status(settings: UiSettings) -> FetchResult:
    return fetch_or_error(get_backend_client(settings).get_feeder_status)


@st.cache_data(ttl=HISTORY_TTL_S, **_CACHE)
def _rate_history(settings: UiSettings, minutes: int) -> FetchResult:
    client = get_backend_client(settings)
    return fetch_or_error(lambda: client.get_stats_history(minutes)["samples"])


def fetch_config(settings: UiSettings) -> Fetched:
    """`GET /feeder/config`, shared by all sessions for a second (failures too)."""
    return Fetched(*_config(settings))


def forget_config() -> None:
    """Drop the shared config read, so the next one sees what this session just changed."""
    _config.clear()


def fetch_status(settings: UiSettings) -> Fetched:
    """`GET /feeder/status` → the list of feeders."""
    return Fetched(*_status(settings))


def fetch_rate_history(settings: UiSettings, minutes: int) -> Fetched:
    """`GET /stats/history` samples (an older backend has none: the page falls back)."""
    return Fetched(*_rate_history(settings, minutes))
