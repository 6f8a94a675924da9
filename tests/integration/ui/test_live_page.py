"""The Live page and its LiveFeed against a real Redis (database 14 of the local server).

The page gets its Settings through `st.session_state[SETTINGS_OVERRIDE_KEY]`, so nothing here
touches the environment. Each test uses its own pub/sub channel: channels are server-wide (not
per database), and other suites may be publishing on the default one. The backend is never
started, so the page must show its "backend unavailable" banner and still render live data.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.settings import Settings
from tests.support import builders
from tests.support.builders import encoded, iso, make_last_tick, make_view
from ui.live_feed import LiveFeed
from ui.resources import SETTINGS_OVERRIDE_KEY
from ui.watchlist import symbol_link

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[3] / "ui" / "app.py"
PAGE = APP.parent / "app_pages" / "live.py"
BTC_LINK = symbol_link("BTCUSDT")  # the symbol column links to the symbol's page


def free_port() -> int:
    """A local port with nothing listening, so REST calls are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def subscribers(client: redis.Redis, channel: str) -> int:
    return int(client.pubsub_numsub(channel)[0][1])


def symbol_updated(symbol: str, price: float, ticks: int = 1) -> bytes:
    now = datetime.now(UTC)
    stamp = iso(now)
    view = make_view(
        symbol,
        now=now,
        last_price=price,
        last_ts=stamp,
        last_event_id=f"e-{ticks}",
        ticks_total=ticks,
        sma_10=price,
        vwap_1m=None,
        volume_1m=0.5,
        trades_1m=ticks,
        high_1m=price,
        low_1m=price,
        open_1m=price,
        change_1m_pct=0.0,
        last_10=[make_last_tick(ts=stamp, price=price, volume=0.5)],
        updated_at=stamp,
    )
    return encoded(builders.symbol_updated(view))


@pytest.fixture
def ui_redis(servers: Any) -> Iterator[redis.Redis]:
    """The session's real Redis (embedded, or REDIS_URL's); never skipped."""
    client = redis.Redis.from_url(servers.redis_url, socket_connect_timeout=1)
    client.ping()
    yield client
    client.close()


@pytest.fixture
def ui_settings(servers: Any) -> Settings:
    return Settings(
        redis_url=servers.redis_url,
        pubsub_channel=f"test:ui:realtime:{uuid.uuid4().hex}",
        backend_url=f"http://127.0.0.1:{free_port()}",
        api_key=None,
    )


@pytest.fixture(autouse=True)
def release_streamlit_caches() -> Iterator[None]:
    """Cached resources are process-wide: clearing them stops each test's LiveFeed thread."""
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def table(at: AppTest) -> Any:
    assert len(at.dataframe) == 1, "the watchlist table is not shown"
    return at.dataframe[0].value


def test_live_page_shows_a_published_view_and_the_backend_banner(
    ui_redis: redis.Redis, ui_settings: Settings
) -> None:
    at = AppTest.from_file(str(PAGE), default_timeout=15)
    at.session_state[SETTINGS_OVERRIDE_KEY] = ui_settings
    at.run()

    assert not at.exception
    assert any("Backend unavailable" in warning.value for warning in at.warning)
    assert any("Waiting for ticks" in info.value for info in at.info)

    # The page's first run started the process's one subscriber on our channel.
    wait_until(lambda: subscribers(ui_redis, ui_settings.pubsub_channel) == 1)
    assert ui_redis.publish(ui_settings.pubsub_channel, symbol_updated("BTCUSDT", 67_012.5)) == 1

    def shows_btc() -> bool:
        at.run()  # AppTest does not fire run_every timers: rerun by hand
        return len(at.dataframe) == 1 and BTC_LINK in set(at.dataframe[0].value["symbol"])

    wait_until(shows_btc, timeout=5.0, step=0.1)
    assert not at.exception
    frame = table(at)
    row = frame[frame["symbol"] == BTC_LINK].iloc[0]
    assert row["last_price"] == pytest.approx(67_012.5)
    assert row["ticks_total"] == 1
    assert not any("Waiting for ticks" in info.value for info in at.info)
    assert any("Backend unavailable" in warning.value for warning in at.warning)
    assert any("Live feed connected" in caption.value for caption in at.caption)

    # A newer view replaces the price; a second session shares the same subscription.
    ui_redis.publish(ui_settings.pubsub_channel, symbol_updated("BTCUSDT", 67_100.0, ticks=2))

    def price_moved() -> bool:
        at.run()
        frame = table(at)
        return frame[frame["symbol"] == BTC_LINK].iloc[0]["last_price"] == 67_100.0

    wait_until(price_moved, timeout=5.0, step=0.1)

    other = AppTest.from_file(str(PAGE), default_timeout=15)
    other.session_state[SETTINGS_OVERRIDE_KEY] = ui_settings
    other.run()
    assert not other.exception
    assert BTC_LINK in set(table(other)["symbol"])
    assert subscribers(ui_redis, ui_settings.pubsub_channel) == 1


def test_live_page_without_redis_shows_banners_not_a_stack_trace(ui_settings: Settings) -> None:
    dead = ui_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    at = AppTest.from_file(str(PAGE), default_timeout=15)
    at.session_state[SETTINGS_OVERRIDE_KEY] = dead
    at.run()

    def feed_warning_shown() -> bool:
        at.run()
        return any("Live updates paused" in warning.value for warning in at.warning)

    wait_until(feed_warning_shown, timeout=5.0, step=0.1)
    assert not at.exception
    assert any("Backend unavailable" in warning.value for warning in at.warning)
    assert any("Waiting for ticks" in info.value for info in at.info)


def test_app_entry_point_opens_on_the_live_page(
    ui_redis: redis.Redis, ui_settings: Settings
) -> None:
    at = AppTest.from_file(str(APP), default_timeout=15)
    at.session_state[SETTINGS_OVERRIDE_KEY] = ui_settings
    at.run()
    assert not at.exception
    assert [title.value for title in at.title] == ["Live"]
    assert any("Backend unavailable" in warning.value for warning in at.warning)


class TestLiveFeed:
    def test_receives_a_published_view(self, ui_redis: redis.Redis, ui_settings: Settings) -> None:
        feed = LiveFeed(ui_settings.effective_redis_url, ui_settings.pubsub_channel).start()
        try:
            wait_until(lambda: feed.snapshot().connected)
            version = feed.version
            ui_redis.publish(ui_settings.pubsub_channel, symbol_updated("ETHUSDT", 3_000.0))
            assert feed.wait_for_change(version, timeout=10.0)
            assert feed.snapshot().views["ETHUSDT"].last_price == 3_000.0
        finally:
            feed.stop()
        assert not feed.running

    def test_resubscribes_after_its_connection_is_killed(
        self, ui_redis: redis.Redis, ui_settings: Settings
    ) -> None:
        name = f"tickstream-ui-test-{uuid.uuid4().hex[:12]}"
        feed = LiveFeed(
            ui_settings.effective_redis_url,
            ui_settings.pubsub_channel,
            client_name=name,
            backoff_initial=0.05,
        ).start()
        try:
            wait_until(lambda: feed.snapshot().connected)
            ours = [c["id"] for c in ui_redis.client_list() if c.get("name") == name]
            assert len(ours) == 1
            ui_redis.client_kill_filter(_id=ours[0])  # only our connection, as a restart would

            wait_until(lambda: feed.snapshot().connection_failures >= 1)
            wait_until(lambda: feed.snapshot().connected)
            wait_until(lambda: subscribers(ui_redis, ui_settings.pubsub_channel) == 1)
            ui_redis.publish(ui_settings.pubsub_channel, symbol_updated("AAPL", 190.0))
            wait_until(lambda: "AAPL" in feed.snapshot().views)
            assert feed.snapshot().last_error is None
        finally:
            feed.stop()

    def test_unreachable_redis_records_the_error_and_stops_cleanly(self) -> None:
        feed = LiveFeed(
            f"redis://127.0.0.1:{free_port()}/0", "test:ui:nowhere", backoff_initial=0.05
        ).start()
        try:
            wait_until(lambda: feed.snapshot().last_error is not None)
            snap = feed.snapshot()
            assert not snap.connected
            assert snap.running
            assert "Connection" in (snap.last_error or "")
        finally:
            feed.stop()
        assert not feed.running
