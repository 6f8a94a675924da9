"""The Feeder page against a real API process and real Redis.

Every assertion about what Apply or a burst button did is checked on the API itself
(`GET /feeder/config`), not on the page. The page gets its Settings through
`st.session_state[SETTINGS_OVERRIDE_KEY]`; widgets are found by label, because their keys carry
the form's generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.settings import Settings
from tests.support.processes import AUTH, Processes
from ui.resources import SETTINGS_OVERRIDE_KEY

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[3] / "ui" / "app_pages" / "feeder.py"
JSON = {"content-type": "application/json"}
API_ENV = {"SYMBOLS": "BTCUSDT,ETHUSDT", "SOURCES": "binance,kraken", "TPS": "10"}

T = TypeVar("T")


@pytest.fixture(autouse=True)
def release_streamlit_caches() -> Iterator[None]:
    """Cached clients and fetches are process-wide: every test starts from a clean slate."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def ui_settings(settings: Settings, procs: Processes) -> Settings:
    """The UI's settings pointing at this test's API (not started yet)."""
    return settings.model_copy(update={"backend_url": procs.api_url, "api_key": None})


@pytest.fixture
def api(procs: Processes) -> httpx.Client:
    procs.start_api(API_ENV)
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        yield client


def open_page(ui_settings: Settings) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=20)
    at.session_state[SETTINGS_OVERRIDE_KEY] = ui_settings
    at.run()
    assert not at.exception, at.exception
    return at


def by_label(widgets: Sequence[T], label: str) -> T:
    found = [w for w in widgets if getattr(w, "label", None) == label]
    assert len(found) == 1, f"{label!r} among {[getattr(w, 'label', None) for w in widgets]}"
    return found[0]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def texts(elements: Any) -> list[str]:
    return [element.value for element in elements]


def apply(at: AppTest) -> None:
    at.button(key="feeder_apply").click().run()
    assert not at.exception, at.exception


def without(config: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in names}


def test_page_renders_the_current_config_and_apply_sends_only_the_tps(
    api: httpx.Client, ui_settings: Settings
) -> None:
    before = api.get("/feeder/config").json()
    assert before["version"] == 0
    at = open_page(ui_settings)

    assert by_label(at.toggle, "Running").value is True
    assert by_label(at.multiselect, "Symbols").value == ["BTCUSDT", "ETHUSDT"]
    assert by_label(at.multiselect, "Sources").value == ["binance", "kraken"]
    assert by_label(at.slider, "Ticks per second (total)").value == 10.0
    assert by_label(at.number_input, "Exact TPS").value == 10.0
    assert by_label(at.radio, "Delivery").value == "single"
    assert by_label(at.slider, "Duplicates (%)").value == 0.0
    assert any("Config v0" in text for text in texts(at.markdown))
    assert any("Editing config v0" in text for text in texts(at.caption))

    # Another operator changes a field the form shows after the page loaded: since Apply sends
    # only what this user changed, their gap rate must survive.
    before = api.put("/feeder/config", json={"gap_rate": 0.25}).json()
    assert before["version"] == 1

    def notices_the_change() -> bool:
        at.run()  # the page shares config reads between sessions for a second
        return any("changed since this form was loaded" in text for text in texts(at.caption))

    wait_until(notices_the_change)

    by_label(at.slider, "Ticks per second (total)").set_value(250.0)
    apply(at)

    after = api.get("/feeder/config").json()
    assert after["tps"] == 250.0
    assert after["version"] == 2
    assert after["gap_rate"] == 0.25
    assert without(after, "tps", "version") == without(before, "tps", "version")
    assert any("Applied config v2" in text and "tps" in text for text in texts(at.success))
    # The form is rebuilt from the new config.
    assert by_label(at.slider, "Ticks per second (total)").value == 250.0
    assert by_label(at.number_input, "Exact TPS").value == 250.0
    assert by_label(at.slider, "Gaps (%)").value == 25.0
    assert any("Editing config v2" in text for text in texts(at.caption))

    # Apply again without a change: nothing is sent.
    apply(at)
    assert api.get("/feeder/config").json()["version"] == 2
    assert any("Nothing to apply" in text for text in texts(at.info))

    # The exact input wins over the slider, and rates go as fractions.
    by_label(at.number_input, "Exact TPS").set_value(1234.5)
    by_label(at.slider, "Duplicates (%)").set_value(7.0)
    apply(at)
    latest = api.get("/feeder/config").json()
    assert latest["version"] == 3
    assert latest["tps"] == 1234.5 and latest["duplicate_rate"] == 0.07
    assert without(latest, "tps", "duplicate_rate", "version") == without(
        after, "tps", "duplicate_rate", "version"
    )


def test_pause_and_symbols_change_in_one_put(api: httpx.Client, ui_settings: Settings) -> None:
    before = api.get("/feeder/config").json()
    at = open_page(ui_settings)
    by_label(at.toggle, "Running").set_value(False)
    by_label(at.multiselect, "Symbols").set_value(["ETHUSDT", "SOL-USD", "ETHUSDT"])
    by_label(at.radio, "Delivery").set_value("batch")
    apply(at)

    after = api.get("/feeder/config").json()
    assert after["running"] is False
    assert after["symbols"] == ["ETHUSDT", "SOL-USD"]
    assert after["mode"] == "batch"
    assert after["version"] == 1  # one Apply, one PUT
    assert without(after, "running", "symbols", "mode", "version") == without(
        before, "running", "symbols", "mode", "version"
    )
    assert by_label(at.toggle, "Running").value is False
    at.run()
    assert any("Paused" in text for text in texts(at.markdown))


def test_market_open_starts_a_burst_and_cancel_ends_it(
    api: httpx.Client, ui_settings: Settings
) -> None:
    at = open_page(ui_settings)
    at.number_input(key="feeder_burst_multiplier").set_value(5.0)
    at.number_input(key="feeder_burst_seconds").set_value(60.0)
    started = datetime.now(UTC)
    at.button(key="feeder_burst_start").click().run()
    assert not at.exception, at.exception

    config = api.get("/feeder/config").json()
    burst = config["burst"]
    assert burst is not None and burst["multiplier"] == 5.0 and burst["seconds"] == 60.0
    until = datetime.fromisoformat(burst["until"])
    assert started + timedelta(seconds=58) <= until <= datetime.now(UTC) + timedelta(seconds=61)
    assert config["version"] == 1 and config["tps"] == 10.0
    assert any("Market open" in text for text in texts(at.success))
    at.run()
    assert any("Burst ×5 until" in text for text in texts(at.markdown))

    at.button(key="feeder_burst_cancel").click().run()
    assert not at.exception, at.exception
    config = api.get("/feeder/config").json()
    assert config["burst"] is None and config["version"] == 2
    at.run()
    assert not any("Burst" in text for text in texts(at.markdown))


def test_an_invalid_symbol_shows_the_field_and_changes_nothing(
    api: httpx.Client, ui_settings: Settings
) -> None:
    before = api.get("/feeder/config").json()
    at = open_page(ui_settings)
    by_label(at.multiselect, "Symbols").set_value(["BTCUSDT", "bad sym"])
    by_label(at.slider, "Ticks per second (total)").set_value(42.0)
    apply(at)

    errors = texts(at.error)
    assert len(errors) == 1 and "symbols" in errors[0] and "422" in errors[0], errors
    assert api.get("/feeder/config").json() == before
    # The user's edits survive, so they can fix the symbol and try again.
    assert by_label(at.multiselect, "Symbols").value == ["BTCUSDT", "bad sym"]
    assert by_label(at.slider, "Ticks per second (total)").value == 42.0

    by_label(at.multiselect, "Symbols").set_value(["BTCUSDT", "BAD.SYM"])
    apply(at)
    after = api.get("/feeder/config").json()
    assert after["symbols"] == ["BTCUSDT", "BAD.SYM"] and after["tps"] == 42.0
    assert not at.error


def test_a_posted_status_shows_up_in_the_live_status(
    api: httpx.Client, ui_settings: Settings
) -> None:
    at = open_page(ui_settings)
    assert any("No feeder has reported" in text for text in texts(at.info))
    assert any("python -m feeder" in text for text in texts(at.info))
    report = {
        "feeder_id": "ui-test-feeder",
        "config_version": 0,
        "sent": 120,
        "accepted": 117,
        "duplicates": 2,
        "rejected": 1,
        "target_tps": 10.0,
        "achieved_tps": 9.5,
        "last_error": "HTTP 503 once",
    }
    response = api.post("/feeder/status", content=orjson.dumps(report), auth=AUTH, headers=JSON)
    assert response.status_code == 200, response.text

    def shows_feeder() -> bool:
        at.run()  # AppTest does not fire run_every timers: rerun by hand
        return len(at.dataframe) == 1 and "ui-test-feeder" in set(at.dataframe[0].value.feeder_id)

    wait_until(shows_feeder)
    assert not at.exception
    row = at.dataframe[0].value.iloc[0]
    assert row["status"] == "🟢 alive"
    assert (row["sent"], row["accepted"], row["duplicates"], row["rejected"]) == (120, 117, 2, 1)
    assert row["achieved_tps"] == 9.5 and row["last_error"] == "HTTP 503 once"
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Feeders alive"] == "1 / 1"
    assert metrics["Achieved TPS"] == "9.5"
    assert not any("No feeder has reported" in text for text in texts(at.info))

    # A second feeder: a totals row sums both.
    other = {"feeder_id": "ui-test-other", "sent": 30, "accepted": 30, "achieved_tps": 3.0}
    api.post("/feeder/status", content=orjson.dumps(other), auth=AUTH, headers=JSON)

    def shows_total() -> bool:
        at.run()
        return len(at.dataframe) == 1 and "Σ total" in set(at.dataframe[0].value.feeder_id)

    wait_until(shows_total)
    frame = at.dataframe[0].value
    total = frame[frame.feeder_id == "Σ total"].iloc[0]
    assert total["sent"] == 150 and total["accepted"] == 147
    assert total["achieved_tps"] == pytest.approx(12.5)
    assert {metric.label: metric.value for metric in at.metric}["Feeders alive"] == "2 / 2"
    # The rate chart is drawn (from /stats/history, or from what this session saw).
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = orjson.loads(charts[0].proto.spec)
    assert [trace["name"] for trace in spec["data"]] == ["target", "achieved"]
    assert spec["layout"]["uirevision"] == "feeder-rate"


def test_dead_backend_shows_banners_and_recovers_by_itself(
    procs: Processes, ui_settings: Settings
) -> None:
    at = open_page(ui_settings)  # nothing listens on procs.api_url yet
    warnings = texts(at.warning)
    assert any("Feeder controls unavailable" in text for text in warnings), warnings
    assert any("Live status unavailable" in text for text in warnings), warnings
    assert not at.toggle and not at.slider
    at.run()
    assert not at.exception

    procs.start_api(API_ENV)

    def controls_back() -> bool:
        at.run()
        assert not at.exception, at.exception
        return len(at.toggle) == 1 and not at.warning

    wait_until(controls_back)
    assert by_label(at.multiselect, "Symbols").value == ["BTCUSDT", "ETHUSDT"]
    assert any("No feeder has reported" in text for text in texts(at.info))
