"""The optional password gate (`UI_PASSWORD`): Render deploys are public, analysts' data is not.

Constant-time comparison; the result is remembered in the session (server-side), never in a
cookie or the URL. With no password configured the gate is open.
"""

from __future__ import annotations

import hmac

import streamlit as st

from backend.settings import UiSettings

AUTHENTICATED_KEY = "ui_authenticated"


def password_matches(expected: str, given: str) -> bool:
    """Constant-time comparison of UTF-8 bytes (hmac.compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(expected.encode(), given.encode())


def password_gate(settings: UiSettings) -> bool:
    """True when the session may see the app; otherwise draws the login form and returns False."""
    if settings.ui_password is None or st.session_state.get(AUTHENTICATED_KEY):
        return True
    st.title("Tickstream")
    with st.form("login", clear_on_submit=True):
        given = st.text_input("Password", type="password", key="ui_password_input")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if password_matches(settings.ui_password.get_secret_value(), given or ""):
            st.session_state[AUTHENTICATED_KEY] = True
            st.rerun()
        st.error("Wrong password.", icon="🔒")
    return False
