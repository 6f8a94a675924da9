"""The ledger's one read of the gauges, against real Redis: /metrics, /stats and the benchmarks'
sync read agree, and dead letters of both calc queues count."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.api.app import create_app
from backend.bus import ledger
from backend.bus.keys import CALC_B_QUEUE, Keys
from backend.bus.ledger import Gauges, read_gauges, read_gauges_sync
from backend.settings import Settings

pytestmark = pytest.mark.integration


def seed(redis: Redis, keys: Keys) -> None:
    redis.zadd(keys.dead_letters(), {"m-a": 1})
    redis.zadd(keys.dead_letters(CALC_B_QUEUE), {"m-b1": 1, "m-b2": 2})
    redis.hset(
        keys.stats,
        mapping={
            ledger.INGEST_ACCEPTED: 100, ledger.CALC_TICKS: 60, ledger.CALC_DEAD_TICKS: 10,
            ledger.OUTBOX_TICKS: 5,
        },
    )  # fmt: skip
    redis.rpush(keys.queue_list(), "q-1", "q-2")


def async_gauges(settings: Settings, keys: Keys) -> Gauges:
    async def read() -> Gauges:
        client = AsyncRedis.from_url(settings.effective_redis_url)
        try:
            return await read_gauges(
                client, keys, heartbeat_timeout_ms=10_000, now_ms=time.time() * 1000
            )
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_sync_and_async_reads_agree_and_count_both_dead_letter_queues(
    settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    seed(redis_client, keys)
    sync = read_gauges_sync(redis_client, keys, heartbeat_timeout_ms=10_000, now_ms=0)
    assert sync == async_gauges(settings, keys)
    assert (sync.dead_letters_calc, sync.dead_letters_calc_b, sync.dead_letters) == (1, 2, 3)
    assert sync.backlog_ticks == 100 - 60 - 10 + 5
    assert sync.queue_depth == 2


def test_metrics_and_stats_report_the_same_gauges(settings: Settings, redis_client: Redis):
    keys = Keys.from_settings(settings)
    seed(redis_client, keys)
    # A loopback client address: /metrics answers allow-listed addresses (or the API key).
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:
        metrics = client.get("/metrics").text
        gauges = client.get("/stats").json()["gauges"]
    assert "tickstream_dead_letters 3.0" in metrics  # calc-b's dead letters included
    assert "tickstream_queue_depth 2.0" in metrics
    assert gauges["dead_letters"] == 3 and gauges["queue_depth"] == 2
    assert gauges["backlog_ticks"] == 35
