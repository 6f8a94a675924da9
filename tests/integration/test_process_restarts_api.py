"""/stats and /metrics show the launcher's restart counter, read from Redis at request time."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from redis import Redis

from backend.bus.keys import Keys
from backend.bus.process_restarts import ProcessRestartsStore
from backend.settings import Settings
from tests.support.processes import running, settings_env

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000


def test_stats_and_metrics_show_restarts_per_process(
    settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    store = ProcessRestartsStore(redis_client, Keys.from_settings(settings))
    with running(settings_env(settings), tmp_path) as procs:
        procs.start_api()
        with httpx.Client(base_url=procs.api_url, timeout=5) as api:
            assert api.get("/stats").json()["processes"] == {}
            assert "tickstream_process_restarts_total{" not in api.get("/metrics").text

            store.record("worker", exit_code=-9, now_ms=NOW_MS)
            store.record("worker", exit_code=-9, now_ms=NOW_MS + 1_000)
            store.record("ui", exit_code=1, now_ms=NOW_MS + 2_000)

            assert api.get("/stats").json()["processes"] == {
                "ui": {"count": 1, "last_exit_code": 1, "last_restart_ms": NOW_MS + 2_000},
                "worker": {"count": 2, "last_exit_code": -9, "last_restart_ms": NOW_MS + 1_000},
            }
            metrics = api.get("/metrics").text
            assert "# TYPE tickstream_process_restarts_total counter" in metrics
            assert 'tickstream_process_restarts_total{process="worker"} 2.0' in metrics
            assert 'tickstream_process_restarts_total{process="ui"} 1.0' in metrics
            # The history's samples keep their shape: the counter is only in /stats.
            schema = api.get("/openapi.json").json()["components"]["schemas"]
            assert "processes" in schema["StatsNow"]["properties"]
            assert "processes" not in schema["StatsSample"]["properties"]
