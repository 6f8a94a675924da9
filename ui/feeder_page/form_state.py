"""What a session remembers about the Feeder form: the config it was built from, its generation,
and the one-shot message a callback leaves for the next run.

Widget keys carry the generation: after a successful Apply the generation moves on and the form
is rebuilt from the config the API returned, while an unrelated refresh never resets what the
user is typing.
"""

from __future__ import annotations

import copy
from typing import Any

import streamlit as st

from backend.settings import UiSettings
from ui.feeder_page.fetch import fetch_config

BASE_KEY = "feeder_form_base"  # the config the form was built from (what Apply diffs against)
GEN_KEY = "feeder_form_generation"  # part of every form widget key; bumped to rebuild the form
FLASH_KEY = "feeder_flash"  # (kind, message) left by a callback for the next run to show


def widget_key(generation: int, name: str) -> str:
    return f"feeder_form_{generation}_{name}"


def flash(kind: str, message: str) -> None:
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    pending = st.session_state.pop(FLASH_KEY, None)
    if pending is None:
        return
    kind, message = pending
    if kind == "success":
        st.success(message, icon="✅")
    elif kind == "error":
        st.error(message, icon="🚫")
    else:
        st.info(message, icon="ℹ️")


def set_base(config: dict[str, Any], *, rebuild: bool) -> None:
    """Remember the config the form shows; `rebuild` drops the user's edits for its values."""
    st.session_state[BASE_KEY] = copy.deepcopy(config)  # cached values are shared: never alias
    if rebuild:
        st.session_state[GEN_KEY] = st.session_state.get(GEN_KEY, 0) + 1


def ensure_base(settings: UiSettings) -> str | None:
    """Load the form's config on first use; the error (for a banner) when it cannot be had."""
    if st.session_state.get(BASE_KEY) is not None:
        return None
    fetched = fetch_config(settings)
    if fetched.value is None:
        return fetched.error or "no answer"
    set_base(fetched.value, rebuild=False)
    return None
