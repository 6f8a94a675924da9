"""The Pipeline page's Processes part against a real API: the launcher's restarts, as counted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from redis import Redis
from streamlit.testing.v1 import AppTest

from backend.bus.keys import Keys
from backend.bus.process_restarts import ProcessRestartsStore
from backend.settings import Settings
from tests.support.processes import running, settings_env
from tests.support.waiting import wait_for
from ui.resources import SETTINGS_OVERRIDE_KEY

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[3] / "ui" / "app_pages" / "pipeline.py"


@pytest.fixture(autouse=True)
def release_streamlit_caches() -> Iterator[None]:
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def test_the_page_shows_restarts_per_process(
    settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    now_ms = time.time_ns() // 1_000_000
    store = ProcessRestartsStore(redis_client, Keys.from_settings(settings))
    store.record("worker", exit_code=-9, now_ms=now_ms - 61_000)
    store.record("worker", exit_code=-9, now_ms=now_ms - 120_000)
    with running(settings_env(settings) | {"STATS_INTERVAL": "0.3"}, tmp_path) as procs:
        procs.start_api()
        at = AppTest.from_file(str(PAGE), default_timeout=30)
        at.session_state[SETTINGS_OVERRIDE_KEY] = settings.model_copy(
            update={"backend_url": procs.api_url, "api_key": None}
        )

        def shown() -> bool:
            st.cache_data.clear()  # the fragment's timer is a rerun here; fetch afresh
            at.run()
            assert not at.exception, at.exception
            return any(header.value == "Processes" for header in at.subheader)

        wait_for(shown, 30, interval=0.3, what="the Processes part")
        worker = next(m for m in at.metric if m.label == "worker")
        assert worker.value == "2 restarts"
        assert "last: SIGKILL · 2 min ago" in str(worker.proto.delta)
