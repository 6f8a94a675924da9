"""The Symbol page against a real API and worker (real Redis and PostgreSQL underneath).

Ticks go in through `POST /ingest/tick` with Basic auth, one of them after a sequence gap; the
page must then show them everywhere: metrics (W), the candlestick chart, the history table
(newest first) and the open gap. The page's live feed reads a gateway of this test's own (its
own ring), so it hears only our symbols; the UI gets `UiSettings` only, no Redis. A second
test starts with nothing listening at the backend URL (the gateway is up): banners, no stack
trace, and the page recovers by itself once an API comes up there.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.core.candles import CandlesResponse
from backend.core.gaps import GapsResponse
from backend.core.view import SymbolsResponse, View
from backend.settings import Settings, UiSettings
from tests.integration.ui.gateway_events import ui_settings
from tests.support.processes import AUTH, Processes, running, settings_env
from tests.support.servers import free_port
from tests.support.verify import stored_count
from tests.support.waiting import wait_for
from ui.resources import SETTINGS_OVERRIDE_KEY
from ui.watchlist import format_price

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[3] / "ui" / "app_pages" / "symbol.py"
PRICES = (100.0, 101.5, 102.25, 103.75)
SEQS = (1, 2, 3, 6)  # 4 and 5 never arrive: one open gap of 2


@pytest.fixture(autouse=True)
def release_streamlit_caches() -> Iterator[None]:
    """Cached resources are process-wide: clearing them stops each test's LiveFeed thread."""
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def unique_symbol(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


def tick(symbol: str, i: int, ts_ms: int, price: float, seq: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "price": price,
        "volume": 0.5,
        "source": "binance",
        "ts": ts_ms,
        "event_id": f"{symbol}-{i}",
        "seq": seq,
    }


def rerun_until(at: AppTest, condition: Callable[[AppTest], bool], timeout: float = 30.0) -> None:
    """AppTest never fires `run_every` timers: rerun by hand until the page shows `condition`."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if condition(at):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"page did not reach the expected state within {timeout} s")
        time.sleep(0.2)


def metrics(at: AppTest) -> dict[str, Any]:
    return {m.label: m for m in at.metric}


def table_with(at: AppTest, column: str) -> Any:
    """The one dataframe on the page with `column` (history: event_id; open gaps: open_for)."""
    frames = [df.value for df in at.dataframe if column in df.value.columns]
    assert len(frames) == 1, f"expected one table with {column!r}, found {len(frames)}"
    return frames[0]


def chart_spec(at: AppTest) -> dict[str, Any]:
    charts = at.get("plotly_chart")
    assert len(charts) == 1, "the candlestick chart is not shown"
    return json.loads(charts[0].proto.spec)


def new_page(settings: UiSettings, **query: str) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    at.session_state[SETTINGS_OVERRIDE_KEY] = settings
    for name, value in query.items():
        at.query_params[name] = value
    return at


def test_symbol_page_shows_live_view_chart_history_and_gap(
    settings: Settings, tmp_path: Path
) -> None:
    symbol = unique_symbol("SYM")
    other = unique_symbol("OTH")
    with running(settings_env(settings), tmp_path) as procs:
        procs.start_gateway()
        procs.start_api()
        procs.start_worker()
        ui = ui_settings(settings, procs.gateway_url, procs.api_url)
        now_ms = int(time.time() * 1000)
        with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
            # Another symbol first: the page must pick ours from the URL, not the first one.
            r = client.post("/ingest/tick", json=tick(other, 0, now_ms - 5_000, 1.0, 1))
            assert r.status_code == 200, r.text
            for i, (price, seq) in enumerate(zip(PRICES, SEQS, strict=True)):
                r = client.post(
                    "/ingest/tick", json=tick(symbol, i, now_ms - 4_000 + i * 1_000, price, seq)
                )
                assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
            wait_for(
                lambda: client.get(f"/symbols/{symbol}").json().get("ticks_total") == 4,
                20,
                what="view of 4 ticks",
            )
            wait_for(lambda: stored_count(settings.pg_url) == 5, 20, what="5 stored rows")

            # The real API answers in the contracts the page parses (extra fields would fail).
            view = View.model_validate(client.get(f"/symbols/{symbol}").json())
            assert view.symbol == symbol and view.gaps_open == 1
            listed = SymbolsResponse.model_validate(client.get("/symbols").json()).symbols
            assert {symbol, other} <= {entry.symbol for entry in listed}
            candles = client.get(f"/symbols/{symbol}/candles").json()
            assert CandlesResponse.model_validate(candles).candles[-1].close == PRICES[-1]
            gap_answer = GapsResponse.model_validate(client.get(f"/symbols/{symbol}/gaps").json())
            assert [(g.from_seq, g.to_seq, g.missing) for g in gap_answer.open] == [(4, 5, 2)]

            at = new_page(ui, symbol=symbol)
            # On a loaded machine one REST call may time out: its banner shows and goes by itself.
            rerun_until(at, lambda a: not a.warning and "Last price" in metrics(a))

            # The URL preselects the symbol, and every control is written back to it.
            assert at.selectbox(key="symbol_pick").value == symbol
            assert set(at.selectbox(key="symbol_pick").options) == {symbol, other}
            assert at.query_params["symbol"] == symbol
            assert (at.query_params["interval"], at.query_params["range"]) == ("1m", "1h")

            # W as metrics: last price with its 1-minute change, counts, the open gap → stale.
            cards = metrics(at)
            assert cards["Last price"].value == format_price(PRICES[-1])
            assert cards["Last price"].delta == "+3.750%"
            assert cards["Ticks total"].value == "4"
            assert cards["Trades 1m"].value == "4"
            assert cards["Gaps open"].value == "1"
            assert any("Stale: 1 sequence gap open" in md.value for md in at.markdown)

            # The chart: our candles (the last close is the last price), volume, uirevision.
            spec = chart_spec(at)
            traces = {t["type"]: t for t in spec["data"] if t["type"] != "scatter"}
            assert traces["candlestick"]["close"][-1] == PRICES[-1]
            assert sum(traces["bar"]["y"]) == pytest.approx(2.0)
            assert spec["layout"]["uirevision"] == f"{symbol}:1m"

            # History: the posted ticks, newest first, and a CSV download.
            history = table_with(at, "event_id")
            assert list(history["price"]) == list(reversed(PRICES))
            assert list(history["event_id"]) == [f"{symbol}-{i}" for i in (3, 2, 1, 0)]
            assert [b.proto.label for b in at.get("download_button")] == ["Download CSV"]

            # The open gap, prominently. (Closed ones may be listed too: the worker may see seq 3
            # before seq 2 and open a gap that closes at once.)
            gaps = table_with(at, "open_for")
            assert [
                (row.source, row.from_seq, row.to_seq, row.missing) for row in gaps.itertuples()
            ] == [("binance", 4, 5, 2)]
            assert any("1 open sequence gap: 2 ticks missing" in e.value for e in at.error)

            # A new tick shows up on the next refreshes (the fragments' job in a browser).
            r = client.post("/ingest/tick", json=tick(symbol, 9, now_ms + 500, 104.5, 7))
            assert r.status_code == 200, r.text
            rerun_until(at, lambda a: metrics(a)["Last price"].value == format_price(104.5))
            rerun_until(at, lambda a: table_with(a, "event_id")["price"].iloc[0] == 104.5)
            rerun_until(at, lambda a: chart_spec(a)["data"][0]["close"][-1] == 104.5)

            # Paused: the very same figure is re-sent (the chart stays mounted, zoom kept) while
            # the metrics move on; unpaused, the chart catches up.
            at.toggle(key="symbol_chart_paused").set_value(True).run()
            frozen = chart_spec(at)
            r = client.post("/ingest/tick", json=tick(symbol, 10, now_ms + 700, 105.25, 8))
            assert r.status_code == 200, r.text
            rerun_until(at, lambda a: metrics(a)["Last price"].value == format_price(105.25))
            assert chart_spec(at) == frozen
            at.toggle(key="symbol_chart_paused").set_value(False).run()
            rerun_until(at, lambda a: chart_spec(a)["data"][0]["close"][-1] == 105.25)

            # Another interval: URL updated, chart re-keyed (zoom resets only on purpose).
            at.button_group(key="interval_pick").set_value("5m").run()
            assert not at.exception, at.exception
            assert at.query_params["interval"] == "5m"
            assert chart_spec(at)["layout"]["uirevision"] == f"{symbol}:5m"

            # Picking another symbol writes it to the URL.
            at.selectbox(key="symbol_pick").select(other).run()
            assert not at.exception, at.exception
            assert at.query_params["symbol"] == other
            rerun_until(at, lambda a: "Last price" in metrics(a))
            assert metrics(at)["Last price"].value == format_price(1.0)


def test_dead_backend_shows_banners_and_the_page_recovers_by_itself(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    ghost = unique_symbol("GHOST")
    with running(settings_env(settings), tmp_path) as procs:
        procs.start_gateway()  # live data is there; only the backend (REST) is missing
        ui = ui_settings(settings, procs.gateway_url, f"http://127.0.0.1:{port}")
        dead_backend_then_recovery(procs, ui, port, ghost)


def dead_backend_then_recovery(procs: Processes, ui: UiSettings, port: int, ghost: str) -> None:

    # With a symbol in the URL: controls, banner, an empty chart, no stack trace.
    at = new_page(ui, symbol=ghost.lower())
    at.run()
    assert not at.exception, at.exception
    assert any("Backend unavailable" in w.value for w in at.warning)
    assert at.selectbox(key="symbol_pick").value == ghost
    assert at.query_params["symbol"] == ghost  # normalized and written back
    assert chart_spec(at)["data"] == []

    # Without one: nothing to pick yet, only the banner.
    bare = new_page(ui)
    bare.run()
    assert not bare.exception, bare.exception
    assert any("Backend unavailable" in w.value for w in bare.warning)
    assert len(bare.selectbox) == 0

    # An API comes up at that URL: the banners go once the short caches expire, and the
    # symbol the backend does not know gets a friendly message instead of an error.
    procs.api_port = port
    procs.start_api()
    rerun_until(at, lambda a: not a.warning and any(ghost in i.value for i in a.info))
    assert any(f"No ticks seen for **{ghost}** yet" in i.value for i in at.info)
    assert not at.metric
    assert not at.error
    rerun_until(bare, lambda a: not a.warning)
    assert any("No symbols yet" in i.value for i in bare.info)
