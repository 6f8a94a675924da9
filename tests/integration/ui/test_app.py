"""The app entry point (`ui/app.py`): navigation of the pages and the UI_PASSWORD gate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from pydantic import SecretStr
from streamlit.testing.v1 import AppTest

from backend.settings import UiSettings
from tests.integration.ui.gateway_events import dead_url
from ui.auth import AUTHENTICATED_KEY
from ui.resources import SETTINGS_OVERRIDE_KEY

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[3] / "ui" / "app.py"


@pytest.fixture(autouse=True)
def release_streamlit_caches() -> Iterator[None]:
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def app_with(password: str | None) -> AppTest:
    """The app with nothing behind it (no gateway, no backend): the gate needs neither."""
    settings = UiSettings(
        gateway_url=dead_url(),
        backend_url=dead_url(),
        api_key=None,
        ui_password=SecretStr(password) if password is not None else None,
    )
    at = AppTest.from_file(str(APP), default_timeout=20)
    at.session_state[SETTINGS_OVERRIDE_KEY] = settings
    return at


def test_without_a_password_the_live_page_opens() -> None:
    at = app_with(None).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Live"]
    assert not at.text_input  # no login form


def test_the_gate_hides_every_page_until_the_right_password() -> None:
    at = app_with("correct horse").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Tickstream"]  # the login form, not a page
    assert "Live" not in [t.value for t in at.title]

    at.text_input(key="ui_password_input").input("wrong")
    at.button[0].click().run()  # the form's "Sign in"
    assert any("Wrong password" in e.value for e in at.error)
    assert AUTHENTICATED_KEY not in at.session_state
    assert "Live" not in [t.value for t in at.title]

    at.text_input(key="ui_password_input").input("correct horse")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state[AUTHENTICATED_KEY] is True
    assert [t.value for t in at.title] == ["Live"]
