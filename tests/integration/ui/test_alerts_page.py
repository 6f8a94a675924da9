"""The alert UI in Streamlit's AppTest, fed by a real gateway process: an `alert.fired`
appended to the realtime ring becomes one toast per session and an unread count on every page,
which the Alerts page clears; the Alerts page survives a dead backend and shows the create
form's errors next to the inputs they name. (The whole flow against the real API and workers:
test_browser.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from redis import Redis
from streamlit.testing.v1 import AppTest

from backend.core.events import AlertFired, decode_event
from backend.settings import Settings, UiSettings
from tests.integration.ui.gateway_events import append_event, live_view, ui_settings, write_view
from tests.support.processes import Processes
from tests.support.waiting import wait_for
from tests.unit.ui.alert_samples import fired_event
from ui.resources import SETTINGS_OVERRIDE_KEY, get_live_feed

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[3] / "ui" / "app.py"
TOAST = "BTC breakout: BTCUSDT last_price 65,012 crossed above 65,000"


@pytest.fixture(autouse=True)
def release_streamlit_caches() -> Iterator[None]:
    """Cached resources are process-wide: clearing them stops each test's LiveFeed thread."""
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def gateway(procs: Processes) -> Processes:
    procs.start_gateway()
    return procs


def fired(**overrides: Any) -> AlertFired:
    return decode_event(fired_event(**overrides))  # type: ignore[return-value]


def start(settings: UiSettings, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=20)
    at.session_state[SETTINGS_OVERRIDE_KEY] = settings
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def links(at: AppTest) -> list[str]:
    return [link.value for link in at.page_link]


def test_a_fired_alert_toasts_once_counts_as_unread_and_the_alerts_page_clears_it(
    gateway: Processes, settings: Settings, redis_client: Redis
) -> None:
    ui = ui_settings(settings, gateway.gateway_url)
    at = start(ui)  # the Live page
    assert "No unread alerts" in links(at)
    # A snapshot carries views, not alerts: the feed must be streaming before the alert fires.
    wait_for(lambda: get_live_feed(ui).snapshot().connected, 15, what="the live feed")

    append_event(redis_client, settings, fired(alert_id="a-1"))
    toasted = wait_for(
        lambda: [t.value for t in at.run().toast], 15, interval=0.2, what="the toast"
    )
    assert toasted == [TOAST]
    assert "1 unread alert" in links(at)
    # Once per session: later runs do not toast it again, even if it is published again.
    append_event(redis_client, settings, fired(alert_id="a-1"))
    append_event(redis_client, settings, fired(alert_id="a-2", rule_name="Second"))
    toasted = wait_for(
        lambda: [t.value for t in at.run().toast], 15, interval=0.2, what="the second toast"
    )
    assert toasted == [TOAST.replace("BTC breakout", "Second")]
    assert "2 unread alerts" in links(at)
    assert [t.value for t in at.run().toast] == []

    # A new session starts with nothing unread: what fired before it is history, not news.
    assert "No unread alerts" in links(start(ui))

    # Looking at the Alerts page reads them all; the count stays at zero on other pages.
    at.switch_page("app_pages/alerts.py").run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Alerts"]
    assert "No unread alerts" in links(at)
    at.switch_page("app_pages/live.py").run()
    assert "No unread alerts" in links(at)


def red(at: AppTest) -> list[str]:
    """The form's error lines (each drawn right under its input)."""
    return [m.value for m in at.markdown if m.value.startswith(":red[")]


def test_the_alerts_page_survives_a_dead_backend_and_shows_form_errors_by_their_inputs(
    gateway: Processes, settings: Settings, redis_client: Redis
) -> None:
    at = start(ui_settings(settings, gateway.gateway_url), "app_pages/alerts.py")
    assert [t.value for t in at.title] == ["Alerts"]
    assert any("Rules unavailable" in w.value for w in at.warning)
    # No symbol to pick yet (the backend is down, the feed saw none): the symbol is refused.
    at.button[0].click().run()  # the form's "Create alert"
    assert not at.exception, at.exception
    assert len(red(at)) == 1 and "must match" in red(at)[0], red(at)

    # The live feed sees BTCUSDT: the form offers it.
    write_view(redis_client, settings, live_view("BTCUSDT", 65_012.0))
    wait_for(
        lambda: "BTCUSDT" in at.run().selectbox(key="alerts_create_0_symbol").options, 15,
        interval=0.2, what="BTCUSDT offered",
    )  # fmt: skip
    at.selectbox(key="alerts_create_0_symbol").set_value("BTCUSDT")

    # Nothing to notify: the reason under the channels; then no threshold: under the value.
    at.checkbox(key="alerts_create_0_in_app").uncheck()
    at.button[0].click().run()
    assert red(at) == [":red[:material/error: pick in-app and/or a webhook URL]"], red(at)
    at.checkbox(key="alerts_create_0_in_app").check()
    at.button[0].click().run()
    assert red(at) == [":red[:material/error: field required]"], red(at)
    # A valid form: the dead backend's refusal shows above the button, the inputs are kept.
    at.number_input(key="alerts_create_0_value").set_value(65_000.0)
    at.button[0].click().run()
    assert len(red(at)) == 1 and "Not created" in red(at)[0], red(at)
    assert at.number_input(key="alerts_create_0_value").value == 65_000.0
    assert not at.exception, at.exception
