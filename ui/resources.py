"""Process-wide resources of the Streamlit app: settings, the live feed, the REST client.

Everything here is built lazily on a page's first use (nothing connects at import) and cached per
Streamlit server process, so every session shares one Redis subscription and one HTTP pool. Cached
objects are shared between sessions: pages only read them.

Settings injection: a page calls `current_settings()`, which returns the Settings object stored in
`st.session_state[SETTINGS_OVERRIDE_KEY]` when there is one (tests and embedding) and otherwise the
process's `get_settings()`, built once. Session state is server-side, so a browser cannot set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import streamlit as st

from backend.config import Settings, get_settings
from ui.api_client import BackendClient, BackendError
from ui.live_feed import LiveFeed
from ui.watchlist import View, views_from_symbols

SETTINGS_OVERRIDE_KEY = "settings_override"
REST_SNAPSHOT_TTL_S = 2.0  # how stale the catch-up snapshot may be; also caps REST load


def _feed_key(settings: Settings) -> tuple[str, str]:
    """What makes two live feeds different: where they subscribe."""
    return (settings.effective_redis_url, settings.pubsub_channel)


def _backend_key(settings: Settings) -> tuple[str, str]:
    """What makes two backend clients different: where they go and which key they send."""
    api_key = settings.api_key.get_secret_value() if settings.api_key else ""
    return (settings.backend_url, api_key)


@st.cache_resource(show_spinner=False)
def get_app_settings() -> Settings:
    """The process's Settings from the environment, built once per Streamlit server process."""
    return get_settings()


def current_settings() -> Settings:
    """The Settings this session runs with: the session's override if set, else the process's."""
    override = st.session_state.get(SETTINGS_OVERRIDE_KEY)
    if override is None:
        return get_app_settings()
    if not isinstance(override, Settings):
        raise TypeError(f"st.session_state[{SETTINGS_OVERRIDE_KEY!r}] must be a Settings object")
    return override


def _release_feed(feed: LiveFeed) -> None:
    feed.stop(timeout=2.0)


@st.cache_resource(show_spinner=False, hash_funcs={Settings: _feed_key}, on_release=_release_feed)
def get_live_feed(settings: Settings) -> LiveFeed:
    """The one running LiveFeed of this process for these settings' Redis and channel."""
    return LiveFeed(settings.effective_redis_url, settings.pubsub_channel).start()


def _release_client(client: BackendClient) -> None:
    client.close()


@st.cache_resource(
    show_spinner=False, hash_funcs={Settings: _backend_key}, on_release=_release_client
)
def get_backend_client(settings: Settings) -> BackendClient:
    """One pooled REST client per backend URL and API key."""
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return BackendClient(settings.backend_url, api_key)


@dataclass(frozen=True, slots=True)
class RestSnapshot:
    """The backend's view of every symbol, or why it could not be had (`error` for a banner)."""

    views: dict[str, View | None] = field(default_factory=dict)
    error: str | None = None
    fetched_at: datetime | None = None


@st.cache_data(
    ttl=REST_SNAPSHOT_TTL_S,
    max_entries=16,
    show_spinner=False,
    hash_funcs={Settings: _backend_key},
)
def fetch_rest_snapshot(settings: Settings) -> RestSnapshot:
    """`GET /symbols` as a catch-up snapshot, shared by all sessions for a couple of seconds.

    Failures are returned (and so cached) rather than raised, so a dead backend costs one attempt
    per TTL instead of one per session per refresh.
    """
    now = datetime.now(UTC)
    try:
        entries = get_backend_client(settings).list_symbols()
    except BackendError as exc:
        return RestSnapshot(error=exc.message, fetched_at=now)
    return RestSnapshot(views=views_from_symbols(entries), fetched_at=now)
