"""Process-wide resources of the Streamlit app: settings, the live feed, the REST client.

Everything here is built lazily on a page's first use (nothing connects at import) and cached per
Streamlit server process, so every session shares one gateway stream and one HTTP pool. Cached
objects are shared between sessions: pages only read them.

Settings injection: a page calls `current_settings()`, which returns the UiSettings object stored
in `st.session_state[SETTINGS_OVERRIDE_KEY]` when there is one (tests and embedding; the full
`Settings` is one too) and otherwise the process's `get_ui_settings()`, built once. Session
state is server-side, so a browser cannot set it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from backend.settings import Settings, UiSettings, get_ui_settings
from ui.api_client import BackendClient, BackendError
from ui.live_feed import LiveFeed

SETTINGS_OVERRIDE_KEY = "settings_override"
SYMBOLS_TTL_S = 2.0  # how stale the symbol pickers' list may be; also caps REST load


def _api_key(settings: UiSettings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


def _feed_key(settings: UiSettings) -> tuple[str, str]:
    """What makes two live feeds different: which gateway they read, with which key."""
    return (settings.gateway_url, _api_key(settings) or "")


def backend_key(settings: UiSettings) -> tuple[str, str]:
    """What makes two backends different (for `hash_funcs` of every cached REST read): where
    they are and which key the UI sends."""
    return (settings.backend_url, _api_key(settings) or "")


# Streamlit matches `hash_funcs` on the exact type: list both the UI's class and the full one
# tests pass as a session override. Cached REST reads key on where the backend is.
BACKEND_HASH_FUNCS = {UiSettings: backend_key, Settings: backend_key}


@st.cache_resource(show_spinner=False)
def get_app_settings() -> UiSettings:
    """The process's UiSettings from the environment, built once per Streamlit server process."""
    return get_ui_settings()


def current_settings() -> UiSettings:
    """The UiSettings this session runs with: the session's override if set, else the process's."""
    override = st.session_state.get(SETTINGS_OVERRIDE_KEY)
    if override is None:
        return get_app_settings()
    if not isinstance(override, UiSettings):
        raise TypeError(f"st.session_state[{SETTINGS_OVERRIDE_KEY!r}] must be a UiSettings object")
    return override


def _release_feed(feed: LiveFeed) -> None:
    feed.stop(timeout=2.0)


@st.cache_resource(
    show_spinner=False,
    hash_funcs={UiSettings: _feed_key, Settings: _feed_key},
    on_release=_release_feed,
)
def get_live_feed(settings: UiSettings) -> LiveFeed:
    """The one running LiveFeed of this process for these settings' gateway and key."""
    return LiveFeed(settings.gateway_url, _api_key(settings)).start()


def _release_client(client: BackendClient) -> None:
    client.close()


@st.cache_resource(
    show_spinner=False,
    hash_funcs=BACKEND_HASH_FUNCS,
    on_release=_release_client,
)
def get_backend_client(settings: UiSettings) -> BackendClient:
    """One pooled REST client per backend URL and API key."""
    return BackendClient(settings.backend_url, _api_key(settings))


FetchResult = tuple[Any, str | None]  # (answer, error sentence): what cached REST reads store


def fetch_or_error(call: Callable[[], Any]) -> FetchResult:
    """The answer, or the error as a sentence for a banner.

    Cached REST reads store this and so hold builtins and `backend.core` contract models only:
    `st.cache_data` pickles values, and an instance of a class defined under `ui/` stops being
    picklable once Streamlit's file watcher reloads its module under a running fragment (it
    watches `ui/` only, so the backend's models are never reloaded). Failures are cached too, so
    a dead backend costs one attempt per TTL instead of one per session per refresh.
    """
    try:
        return (call(), None)
    except BackendError as exc:
        return (None, exc.message)


@st.cache_data(
    ttl=SYMBOLS_TTL_S,
    max_entries=16,
    show_spinner=False,
    hash_funcs=BACKEND_HASH_FUNCS,
)
def _symbols(settings: UiSettings) -> FetchResult:
    return fetch_or_error(get_backend_client(settings).list_symbols)


@dataclass(frozen=True, slots=True)
class KnownSymbols:
    """The symbols the backend knows (with or without a view yet), or why it could not say."""

    symbols: list[str] = field(default_factory=list)
    error: str | None = None


def fetch_symbols(settings: UiSettings) -> KnownSymbols:
    """`GET /symbols`' names, for the symbol pickers; shared by all sessions for a couple of
    seconds. (The live views come from the gateway's snapshot and stream, not from here.)"""
    entries, error = _symbols(settings)
    if error is not None:
        return KnownSymbols(error=error)
    return KnownSymbols(symbols=[entry.symbol for entry in entries if entry.symbol])
