"""The Replay page in a real browser (Debian's chromium, driven by Playwright) against real
processes: the API, the `history` service and the Streamlit server, on real Redis and
PostgreSQL, with stored ticks seeded straight into md_ticks.

A backtest started from the form at `max` with an inline sandbox rule reaches `done`; its candles
and its would-have-fired markers and rows are drawn (as many rows as `GET /replays/{id}/alerts`
lists); a slow replay is paused, resumed and cancelled with the buttons. Every wait is on the DOM
or the API. And, in Streamlit's AppTest with nothing behind it: a dead backend is a banner, and the
form names a bad field before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from playwright.sync_api import Page, sync_playwright
from streamlit.testing.v1 import AppTest

from backend.settings import Settings, UiSettings
from tests.integration.ui.chromium import CHROMIUM_FLAGS, INSTALL_HINT, find_chromium
from tests.integration.ui.gateway_events import dead_url
from tests.support.history import make_history, store
from tests.support.processes import ROOT, Processes
from tests.support.servers import free_port
from tests.support.waiting import wait_for
from ui.resources import SETTINGS_OVERRIDE_KEY

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / "artifacts" / "ui"  # screenshots, as test_browser.py leaves them
APP = Path(__file__).resolve().parents[3] / "ui" / "app.py"

API_KEY = "replay-page-key"
SYMBOL = "RPLAY"  # stored history only: never live, so it is typed into the picker
TIMEOUT_MS = 30_000  # generous: a loaded machine reruns Streamlit slowly
# True once a Plotly trace named `name` holds `n` points.
TRACE_HAS = """([name, n]) => Array.from(document.querySelectorAll('.js-plotly-plot')).some(
    gd => (gd.data || []).some(t => t.name === name && (t.x || []).length === n))"""
TRACES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(
    gd => (gd.data || []).map(t => ({name: t.name || '', points: (t.x || []).length})))"""


@pytest.fixture
def page() -> Iterator[Page]:
    found = find_chromium()
    if found is None:
        pytest.fail(f"chromium is not installed: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=found, args=CHROMIUM_FLAGS)
        page = browser.new_context(viewport={"width": 1440, "height": 2400}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def set_date(page: Page, label: str, value: str) -> None:
    """Type a date (YYYY-MM-DD) into a Streamlit date input, segment by segment (react-aria's
    year / month / day spinbuttons)."""
    for part, text in zip(("year", "month", "day"), value.split("-"), strict=True):
        segment = page.get_by_role("spinbutton", name=f"{part}, {label}", exact=True)
        segment.click()
        segment.press_sequentially(text)
    hidden = page.get_by_test_id("stDateInput").filter(has_text=label).locator("input")
    assert hidden.input_value() == value


def start_form(page: Page, speed: str, *, sandbox: bool) -> None:
    """Fill the rest of the form (one `st.form`: nothing reruns before Start) and submit."""
    page.get_by_label("Speed", exact=True).fill(speed)
    alerts = page.get_by_test_id("stRadio")
    if sandbox:  # the inline rule: last_price crosses above 100, once per 1 m bar
        alerts.get_by_text("sandbox", exact=False).click()
        page.get_by_text("Add an inline rule").click()
        page.get_by_label("Value", exact=True).fill("100")
    else:
        alerts.get_by_text("off", exact=True).click()
    page.get_by_role("button", name="Start replay").click()


def wait_state(page: Page, state: str) -> None:
    """The selected replay's state line reads `state`."""
    page.get_by_test_id("stMarkdownContainer").filter(has_text=f"State: {state}").first.wait_for(
        timeout=TIMEOUT_MS
    )


def test_a_backtest_from_the_form_runs_to_done_draws_its_firings_and_pauses_and_resumes(
    procs: Processes, settings: Settings, page: Page
) -> None:
    ticks = make_history([SYMBOL], ticks_per_symbol=600, span_s=600)
    assert store(settings.psycopg_url, ticks) == len(ticks)
    procs.start_history()
    # The API and the UI start side by side (each waits for its own health); no gateway: the
    # page is REST only (the sidebar's alert feed just keeps retrying).
    with ThreadPoolExecutor(2) as pool:
        ui = pool.submit(procs.start_ui, free_port(), {"API_KEY": API_KEY})
        procs.start_api({"API_KEY": API_KEY})
        ui_url = ui.result()
    api = httpx.Client(base_url=procs.api_url, headers={"x-api-key": API_KEY}, timeout=10)

    page.goto(ui_url + "/replay")
    page.get_by_role("button", name="Start replay").wait_for(timeout=TIMEOUT_MS)
    page.get_by_test_id("stMultiSelect").first.locator("input").fill(SYMBOL)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    set_date(page, "From (UTC date)", "2026-01-01")
    set_date(page, "To (UTC date)", "2026-01-02")

    # At max, backtesting an inline rule.
    start_form(page, "max", sandbox=True)
    wait_state(page, "done")
    [done] = api.get("/replays").json()["replays"]
    assert done["ticks_applied"] == done["ticks_total"] == len(ticks), done
    assert (done["alerts"], done["speed"], done["symbols"]) == ("sandbox", "max", [SYMBOL])
    firings = api.get(f"/replays/{done['id']}/alerts").json()["firings"]
    assert firings, "the seeded prices cross 100: the rule must have fired"

    # The chart: a marker per firing; the replayed candles, and the live (stored) ones of the
    # same range, which are the same candles.
    page.wait_for_function(TRACE_HAS, arg=["Would have fired", len(firings)], timeout=TIMEOUT_MS)
    traces: dict[str, Any] = {t["name"]: t["points"] for t in page.evaluate(TRACES)}
    assert traces[f"{SYMBOL} replay"] > 0
    assert traces[f"{SYMBOL} live"] == traces[f"{SYMBOL} replay"]
    # The table: as many rows as the API lists.
    page.get_by_text(f"Would have fired: {len(firings):,}").wait_for(timeout=TIMEOUT_MS)
    table = page.get_by_test_id("stDataFrame").filter(has_text=firings[0]["tick"]["event_id"])
    # The grid fills in after its heading: wait for its rows, then compare.
    rows = table.locator("table tbody tr")
    wait_for(lambda: rows.count() >= len(firings), TIMEOUT_MS / 1000, what="firing rows")
    assert rows.count() == len(firings), table.inner_text()
    assert page.get_by_test_id("stException").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "replay.png"), full_page=True)

    # A slow replay (real speed, alerts off): Pause, Resume, then Cancel, by the buttons.
    start_form(page, "1", sandbox=False)
    wait_state(page, "running")
    assert page.get_by_role("button", name="Resume").is_disabled()
    page.get_by_role("button", name="Pause").click()
    wait_state(page, "paused")
    assert page.get_by_role("button", name="Pause").is_disabled()
    page.get_by_role("button", name="Resume").click()
    wait_state(page, "running")
    page.get_by_role("button", name="Cancel").click()
    wait_state(page, "cancelled")
    slow = api.get("/replays").json()["replays"][0]
    assert (slow["state"], slow["speed"], slow["alerts"]) == ("cancelled", 1, "off")
    assert slow["ticks_applied"] < len(ticks)
    assert page.get_by_test_id("stException").count() == 0
    api.close()


def test_with_the_backend_down_the_page_says_so_and_the_form_names_bad_fields() -> None:
    at = AppTest.from_file(str(APP), default_timeout=20)
    at.session_state[SETTINGS_OVERRIDE_KEY] = UiSettings(
        gateway_url=dead_url(), backend_url=dead_url(), api_key=None
    )
    try:
        at.run()
        at.switch_page("app_pages/replay.py").run()
        assert not at.exception, at.exception
        assert [t.value for t in at.title] == ["Replay"]
        assert any("Replays unavailable" in w.value for w in at.warning)
        at.text_input(key="replay_form_speed").input("fast")
        at.button(key="FormSubmitter:replay_form-Start replay").click().run()
        assert not at.exception, at.exception
        assert [e.value for e in at.error] == [
            "speed: a number from 1 to 1000 (× real time), or max"
        ]
        # A well-formed request reaches the (dead) backend: its failure is a field-named line.
        at.text_input(key="replay_form_speed").input("max")
        at.multiselect(key="replay_form_symbols").set_value(["AAA"])
        at.button(key="FormSubmitter:replay_form-Start replay").click().run()
        [error] = [e.value for e in at.error]
        assert error.startswith("backend: not started — Cannot reach the backend"), error
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
