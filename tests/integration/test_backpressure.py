"""Backpressure: at MAX_BACKLOG hand-offs waiting, ingest answers 429 + Retry-After, writes
nothing for the refused request, counts it, and accepts again once the workers drain."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.settings import Settings
from tests.support.processes import AUTH, running, settings_env
from tests.support.verify import stored_ticks
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def tick(i: int) -> dict[str, Any]:
    return {
        "symbol": "BPRESS",
        "price": 100.0 + i,
        "volume": 1.0,
        "source": "binance",
        "ts": datetime.now(UTC).isoformat(),
        "event_id": f"bp-{uuid.uuid4().hex}",
    }


def test_ingest_sheds_at_the_high_water_mark_and_recovers(
    settings: Settings, tmp_path: Path
) -> None:
    env = settings_env(settings) | {"MAX_BACKLOG": "5"}
    with running(env, tmp_path) as procs, httpx.Client(base_url=procs.api_url, auth=AUTH) as api:
        procs.start_api()  # no worker yet: every hand-off waits (1 queue message + 1 outbox entry)
        accepted = [tick(i) for i in range(3)]
        for item in accepted:
            assert api.post("/ingest/tick", json=item).json()["status"] == "accepted"

        refused = tick(3)
        response = api.post("/ingest/tick", json=refused)
        assert response.status_code == 429, response.text
        assert response.headers["Retry-After"] == "1"
        body = response.json()
        assert body["error"] == "backpressure"
        assert body["detail"][0]["field"] == "body"
        batch = api.post("/ingest/ticks", json=[tick(4), tick(5)])
        assert batch.status_code == 429

        stats = api.get("/stats").json()
        assert stats["counters"]["ingest_shed"] == 3  # 1 single + 2 in the refused batch
        assert stats["counters"]["ingest_accepted"] == 3
        assert stats["gauges"]["queue_depth"] + stats["gauges"]["outbox_entries"] == 6

        procs.start_worker(processes=1, threads=2)
        wait_for(lambda: len(stored_ticks(settings.psycopg_url)) == 3, 30, what="the drain")
        wait_for(
            lambda: (
                (s := api.get("/stats").json()["gauges"])["queue_depth"] == 0
                and s["outbox_entries"] == 0
            ),
            30,
            what="an empty backlog",
        )
        # The refused tick was never written (no dedup mark): re-sent, it is accepted, not a dup.
        again = api.post("/ingest/tick", json=refused)
        assert again.status_code == 200 and again.json()["status"] == "accepted", again.text
        wait_for(lambda: len(stored_ticks(settings.psycopg_url)) == 4, 30, what="4 rows")
        wait_for(
            lambda: api.get("/symbols/BPRESS").json().get("ticks_total") == 4,
            30,
            what="W counting exactly the 4 accepted ticks",
        )
        metrics = api.get("/metrics").text
        assert 'tickstream_pipeline_ticks_total{outcome="shed",reason=""} 3.0' in metrics


def test_the_high_water_mark_counts_ticks_not_hand_offs(settings: Settings, tmp_path: Path) -> None:
    """One batch of 4 ticks is one hand-off (one queue message, one outbox entry) but 4 ticks
    waiting twice (for calc and for Postgres): at MAX_BACKLOG 8 the next tick is refused."""
    env = settings_env(settings) | {"MAX_BACKLOG": "8"}
    with running(env, tmp_path) as procs, httpx.Client(base_url=procs.api_url, auth=AUTH) as api:
        procs.start_api()  # no worker yet
        first = api.post("/ingest/ticks", json=[tick(i) for i in range(4)])
        assert first.status_code == 200 and first.json()["accepted"] == 4, first.text
        gauges = api.get("/stats").json()["gauges"]
        assert (gauges["queue_depth"], gauges["outbox_entries"]) == (1, 1)
        assert gauges["backlog_ticks"] == 8
        refused = api.post("/ingest/tick", json=tick(4))
        assert refused.status_code == 429, refused.text

        procs.start_worker(processes=1, threads=2)
        wait_for(
            lambda: api.get("/stats").json()["gauges"]["backlog_ticks"] == 0,
            30,
            what="the backlog counted back down to zero after the drain",
        )
        assert api.post("/ingest/tick", json=tick(5)).status_code == 200
