"""The Symbol page's REST reads, cached for a second or two and shared by every session of this
process, so N analysts do not multiply the backend's load."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from backend.settings import UiSettings
from ui.api_client import BackendError
from ui.resources import BACKEND_HASH_FUNCS, get_backend_client
from ui.symbol_view import Fetched

VIEW_TTL_S = 0.5  # the live feed carries the fast path; REST only catches up
CANDLES_TTL_S = 1.5
TABLES_TTL_S = 2.0

Raw = tuple[datetime, Any, str | None]  # (fetched_at, data, error): what the cache stores


def _fetch(call: Callable[[], Any]) -> Raw:
    """The answer, or the error as a sentence: failures are cached too, so a dead backend costs
    one attempt per TTL instead of one per session per refresh.

    Only builtins go into the cache: it pickles values, and an instance of one of our classes
    stops being picklable when Streamlit's file watcher reloads its module under a fragment.
    """
    now = datetime.now(UTC)
    try:
        return (now, call(), None)
    except BackendError as exc:
        return (now, None, exc.message)


_CACHE = {"show_spinner": False, "max_entries": 512, "hash_funcs": BACKEND_HASH_FUNCS}


@st.cache_data(ttl=VIEW_TTL_S, **_CACHE)
def _cached_view(settings: UiSettings, symbol: str) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_view(symbol))


@st.cache_data(ttl=CANDLES_TTL_S, **_CACHE)
def _cached_candles(settings: UiSettings, symbol: str, interval: str, limit: int) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_candles(symbol, interval, limit=limit))


@st.cache_data(ttl=TABLES_TTL_S, **_CACHE)
def _cached_history(settings: UiSettings, symbol: str, limit: int) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_history(symbol, limit=limit))


@st.cache_data(ttl=TABLES_TTL_S, **_CACHE)
def _cached_gaps(settings: UiSettings, symbol: str) -> Raw:
    return _fetch(lambda: get_backend_client(settings).get_gaps(symbol))


def fetch_view(settings: UiSettings, symbol: str) -> Fetched:
    """`GET /symbols/{symbol}`: W, or `data=None` when the backend has no ticks for it."""
    return Fetched(*_cached_view(settings, symbol))


def fetch_candles(settings: UiSettings, symbol: str, interval: str, limit: int) -> Fetched:
    """`GET /symbols/{symbol}/candles`, the current bucket included."""
    return Fetched(*_cached_candles(settings, symbol, interval, limit))


def fetch_history(settings: UiSettings, symbol: str, limit: int) -> Fetched:
    """`GET /symbols/{symbol}/history?limit=N`, newest first."""
    return Fetched(*_cached_history(settings, symbol, limit))


def fetch_gaps(settings: UiSettings, symbol: str) -> Fetched:
    """`GET /symbols/{symbol}/gaps`: open and recently closed sequence gaps."""
    return Fetched(*_cached_gaps(settings, symbol))
