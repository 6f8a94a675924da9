"""The Live page and its LiveFeed against a real gateway process, on real Redis underneath.

The UI gets only `UiSettings` (no Redis, no database: it has no such field): its live data comes
from the gateway's `/stream`. The test writes views with calc's own view write, so the gateway's
snapshot and stream carry them as in production. The backend (REST) is never started: the Live
page does not need it. The gateway is killed (-9) and started again: the page says
"reconnecting…" meanwhile, and the feed resumes from its last event id (or, when the ring no
longer holds it, takes the reset and the fresh snapshot).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from redis import Redis
from streamlit.testing.v1 import AppTest

from backend.bus.keys import Keys
from backend.core.stream_ids import format_id
from backend.settings import Settings, UiSettings
from tests.integration.ui.gateway_events import (
    append_event,
    dead_url,
    live_view,
    ui_settings,
    write_view,
)
from tests.support.builders import make_tick_received
from tests.support.processes import Processes
from tests.support.ring import last_id
from tests.support.waiting import wait_for
from ui.live_feed import LiveFeed
from ui.resources import SETTINGS_OVERRIDE_KEY, get_live_feed
from ui.watchlist import symbol_link

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[3] / "ui" / "app.py"
PAGE = APP.parent / "app_pages" / "live.py"
BTC_LINK = symbol_link("BTCUSDT")  # the symbol column links to the symbol's page


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


def table(at: AppTest) -> Any:
    assert len(at.dataframe) == 1, "the watchlist table is not shown"
    return at.dataframe[0].value


def prices(at: AppTest) -> dict[str, float]:
    """{symbol link: last price} of the watchlist, after one more run of the page."""
    at.run()  # AppTest does not fire run_every timers: rerun by hand
    assert not at.exception, at.exception
    if len(at.dataframe) != 1:
        return {}
    frame = at.dataframe[0].value
    return dict(zip(frame["symbol"], frame["last_price"], strict=True))


def page(settings: UiSettings) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=15)
    at.session_state[SETTINGS_OVERRIDE_KEY] = settings
    return at


def sse_clients(procs: Processes) -> int:
    answer = httpx.get(procs.gateway_url + "/clients", timeout=2)
    return sum(1 for client in answer.json() if client["transport"] == "sse")


def warnings(at: AppTest) -> list[str]:
    return [warning.value for warning in at.warning]


def test_live_page_shows_the_gateways_snapshot_then_its_events(
    gateway: Processes, settings: Settings, redis_client: Redis
) -> None:
    # Written before the page exists: only the gateway's snapshot can bring it (no REST here).
    write_view(redis_client, settings, live_view("ETHUSDT", 3_000.0))
    at = page(ui_settings(settings, gateway.gateway_url))
    wait_for(lambda: symbol_link("ETHUSDT") in prices(at), 15, interval=0.1, what="snapshot")
    assert not warnings(at)  # the dead backend is not the Live page's business
    assert any("Live feed connected" in caption.value for caption in at.caption)

    write_view(redis_client, settings, live_view("BTCUSDT", 67_012.5))
    wait_for(lambda: prices(at).get(BTC_LINK) == 67_012.5, 15, interval=0.1, what="BTC shown")
    frame = table(at)
    assert frame[frame["symbol"] == BTC_LINK].iloc[0]["ticks_total"] == 1
    assert not any("Waiting for ticks" in info.value for info in at.info)

    # A newer view replaces the price; a second session shares the same stream.
    write_view(redis_client, settings, live_view("BTCUSDT", 67_100.0, ticks=2))
    wait_for(lambda: prices(at).get(BTC_LINK) == 67_100.0, 15, interval=0.1, what="price moved")
    other = page(ui_settings(settings, gateway.gateway_url))
    other.run()
    assert not other.exception
    assert BTC_LINK in set(table(other)["symbol"])
    assert sse_clients(gateway) == 1


def test_live_page_without_a_gateway_says_reconnecting_not_a_stack_trace(
    settings: Settings,
) -> None:
    at = page(ui_settings(settings, dead_url()))
    at.run()

    def reconnecting() -> bool:
        at.run()
        return any("Live feed reconnecting…" in text for text in warnings(at))

    wait_for(reconnecting, 15, interval=0.1, what="the reconnecting banner")
    assert not at.exception
    assert any("Waiting for ticks" in info.value for info in at.info)
    assert any("Live feed reconnecting…" in caption.value for caption in at.caption)


def test_app_entry_point_opens_on_the_live_page(gateway: Processes, settings: Settings) -> None:
    at = AppTest.from_file(str(APP), default_timeout=15)
    at.session_state[SETTINGS_OVERRIDE_KEY] = ui_settings(settings, gateway.gateway_url)
    at.run()
    assert not at.exception
    assert [title.value for title in at.title] == ["Live"]


def test_after_a_gateway_kill_the_page_says_reconnecting_and_the_feed_resumes_exactly(
    gateway: Processes, settings: Settings, redis_client: Redis
) -> None:
    """kill -9 the gateway, keep writing, start it again: the feed resumes after its last id
    (no reset, no second snapshot) and ends with every view as last written."""
    symbols = [f"R{n}" for n in range(5)]
    written: dict[str, float] = {}
    ticks = dict.fromkeys(symbols, 0)

    def write(symbol: str, price: float) -> None:
        ticks[symbol] += 1
        write_view(redis_client, settings, live_view(symbol, price, ticks[symbol]))
        written[symbol] = price

    at = page(ui_settings(settings, gateway.gateway_url))
    at.run()
    for n, symbol in enumerate(symbols):
        write(symbol, 100.0 + n)
    append_event(redis_client, settings, make_tick_received("R0"))
    expected = {symbol_link(s): p for s, p in written.items()}
    wait_for(lambda: prices(at) == expected, 15, interval=0.1, what="the first views")
    feed = feed_of(at)
    before = feed.snapshot()
    assert (before.snapshots, before.resets, before.last_id) == (
        1,
        0,
        last_ring_id(redis_client, settings),
    )

    gateway.kill("gateway")

    def reconnecting() -> bool:
        at.run()
        return any("Live feed reconnecting…" in text for text in warnings(at))

    wait_for(reconnecting, 15, interval=0.1, what="reconnecting… on the page")
    assert prices(at) == expected  # the last values stay up meanwhile
    for n, symbol in enumerate(symbols):  # written while no gateway runs: only the ring has them
        write(symbol, 200.0 + n)
    write("R1", 250.0)

    gateway.start_gateway()
    for n, symbol in enumerate(symbols[:3]):
        write(symbol, 300.0 + n)
    expected = {symbol_link(s): p for s, p in written.items()}
    wait_for(lambda: prices(at) == expected, 20, interval=0.1, what="every view caught up")
    assert not warnings(at)

    after = feed.snapshot()
    # Resumed, not restarted; and every message decoded.
    assert (after.snapshots, after.resets, after.missed, after.bad_events) == (1, 0, 0, 0)
    assert {s: v.last_price for s, v in after.views.items()} == written
    # The restarted gateway saw one connection, and it resumed (Last-Event-ID) after exactly
    # the id the feed held (the views replayed may be coalesced per symbol: the newest wins).
    assert started(gateway) == {"resume": 1.0}
    assert after.last_id == last_ring_id(redis_client, settings)
    assert after.connection_failures >= 1


def test_a_reset_replaces_the_views_with_the_fresh_snapshot(
    gateway: Processes, settings: Settings, redis_client: Redis
) -> None:
    """The ring lost the feed's position while the gateway was down: the gateway says reset and
    sends a snapshot, and the feed's views become exactly the snapshot's (no merge)."""
    feed = LiveFeed(gateway.gateway_url, backoff_initial=0.05, backoff_max=0.5).start()
    try:
        write_view(redis_client, settings, live_view("OLD", 1.0))
        write_view(redis_client, settings, live_view("KEPT", 2.0))
        wait_for(lambda: set(feed.snapshot().views) == {"OLD", "KEPT"}, 15, what="first views")

        gateway.kill("gateway")
        wait_for(lambda: feed.snapshot().reconnecting, 15, what="reconnecting")
        # The ring is emptied (trimmed) and OLD's view removed from the store; new events follow,
        # so the ring's first entry is after the feed's last id: it cannot resume.
        keys = Keys.from_settings(settings)
        redis_client.xtrim(settings.realtime_stream, maxlen=0, approximate=False)
        redis_client.delete(keys.view("OLD"))
        redis_client.hdel(keys.symbols, "OLD")
        write_view(redis_client, settings, live_view("NEW", 3.0))
        write_view(redis_client, settings, live_view("KEPT", 2.5, ticks=2))
        gateway.start_gateway()

        wait_for(lambda: feed.snapshot().resets == 1, 20, what="the reset")
        wait_for(lambda: feed.snapshot().snapshots == 2, 20, what="the snapshot after it")
        snap = feed.snapshot()
        assert {s: v.last_price for s, v in snap.views.items()} == {"KEPT": 2.5, "NEW": 3.0}
        assert snap.last_id == last_ring_id(redis_client, settings)
        assert snap.connected and snap.bad_events == 0, snap.events
    finally:
        feed.stop()
    assert not feed.running


class TestLiveFeed:
    def test_sends_the_api_key_and_reports_a_refusal(
        self, procs: Processes, settings: Settings
    ) -> None:
        procs.start_gateway(extra_env={"API_KEY": "s3cret-key-for-the-gateway"})
        refused = LiveFeed(procs.gateway_url, "wrong", backoff_initial=0.05).start()
        feed = LiveFeed(procs.gateway_url, "s3cret-key-for-the-gateway").start()
        try:
            wait_for(lambda: feed.snapshot().connected, 15, what="the keyed feed")
            wait_for(lambda: refused.snapshot().connection_failures >= 2, 15, what="refusals")
            snap = refused.snapshot()
            assert not snap.connected and snap.reconnecting
            assert "HTTP 401" in (snap.last_error or "")
        finally:
            feed.stop()
            refused.stop()
        assert not feed.running and not refused.running

    def test_unreachable_gateway_records_the_error_and_stops_cleanly(self) -> None:
        feed = LiveFeed(dead_url(), backoff_initial=0.05).start()
        try:
            wait_for(lambda: feed.snapshot().last_error is not None, 15, what="an error")
            snap = feed.snapshot()
            assert not snap.connected
            assert snap.running and snap.reconnecting
            assert "Connect" in (snap.last_error or "")
        finally:
            feed.stop()
        assert not feed.running

    def test_stop_cuts_a_live_stream_at_once(self, gateway: Processes) -> None:
        feed = LiveFeed(gateway.gateway_url, read_timeout=300.0).start()
        wait_for(lambda: feed.snapshot().connected, 15, what="connected")
        feed.stop(timeout=5.0)  # without the socket shutdown it would wait for a heartbeat
        assert not feed.running
        assert not feed.snapshot().reconnecting


def started(procs: Processes) -> dict[str, float]:
    """The gateway's SSE connections by how they started (its metrics), non-zero ones only."""
    text = httpx.get(procs.gateway_url + "/metrics", timeout=2).text
    found = re.findall(
        r'^tickstream_gateway_connections_total\{start="(\w+)",transport="sse"\} (\S+)$',
        text,
        flags=re.M,
    )
    return {how: float(value) for how, value in found if float(value)}


def feed_of(at: AppTest) -> LiveFeed:
    """The page's process-wide feed (AppTest runs the page in this process)."""
    return get_live_feed(at.session_state[SETTINGS_OVERRIDE_KEY])


def last_ring_id(redis: Redis, settings: Settings) -> str:
    """The id of the ring's newest entry: where a feed that has everything stands."""
    return format_id(last_id(redis, settings.realtime_stream))
