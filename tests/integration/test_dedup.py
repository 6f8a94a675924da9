"""The compact de-dup memory through the real API (in-process, real Redis, injected clock):
generations, pre-upgrade keys, the layout guard and the start-up window check."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.api.app import create_app
from backend.bus import dedup
from backend.bus.dedup import DedupLayoutChanged
from backend.bus.keys import Keys
from backend.core.dedup import DedupLayout
from backend.settings import Settings
from tests.support.processes import AUTH, Processes, uvicorn_command

pytestmark = pytest.mark.integration

T0 = 1_795_000_000.0  # the de-dup clock's start (arrival time, s); ticks' ts are real-time


def tick(i: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "symbol": "DEDUP",
        "price": 100.0 + i,
        "volume": 1.0,
        "source": "dedup-test",
        "ts": int(time.time() * 1000) - 1000,
        "event_id": f"dd-{i}",
    }
    body.update(overrides)
    return body


def small(settings: Settings, **overrides: Any) -> Settings:
    """A 60 s window in 3 generations of 20 s, 4 shards: boundaries a test can cross."""
    values = {"dedup_ttl": 60, "dedup_generations": 3, "dedup_shards": 4, "max_tick_age": 50}
    return settings.model_copy(update=values | overrides)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def post(client: TestClient, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    r = client.post("/ingest/tick", json=body, auth=AUTH)
    return r.status_code, r.json()


def conflict_fields(answer: dict[str, Any]) -> list[str]:
    return [e["field"] for e in answer["detail"]]


def test_duplicates_and_conflicts_across_generation_boundaries(settings: Settings):
    clock = Clock(T0)
    first = tick(1)
    with TestClient(create_app(small(settings), dedup_clock=clock)) as client:
        assert post(client, first) == (200, {"status": "accepted", "event_id": "dd-1"})
        for elapsed in (0, 19, 20, 41, 59.9):  # same, next, and the last live generation
            clock.now = T0 + elapsed
            assert post(client, first)[1]["status"] == "duplicate", elapsed
            status, answer = post(client, {**first, "price": 7.5})
            assert status == 409 and conflict_fields(answer) == ["event_id", "price"], elapsed
        # written in the batch endpoint near a boundary, seen again after it
        second, third = tick(2), tick(3)
        clock.now = T0 + 39.5
        r = client.post("/ingest/ticks", json=[second, third, second], auth=AUTH).json()
        assert (r["accepted"], r["duplicates"], r["rejected"]) == (2, 1, [])
        clock.now = T0 + 40.5
        r = client.post("/ingest/ticks", json=[second, {**third, "volume": 2.0}], auth=AUTH).json()
        assert (r["accepted"], r["duplicates"]) == (0, 1)
        assert [e["field"] for e in r["rejected"][0]["errors"]] == ["event_id", "volume"]
        # dd-1's generation [T0, T0+20) ends at T0+20: remembered until T0+80 at most, then
        # gone from every lookup (the window is DEDUP_TTL at least, DEDUP_TTL + 20 s at most)
        clock.now = T0 + 80
        assert post(client, first)[1]["status"] == "accepted"
        clock.now = T0 + 81
        assert post(client, first)[1]["status"] == "duplicate"


def test_pre_upgrade_keys_are_honoured_while_the_marker_exists(
    settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    old = tick(1)
    content = [old["symbol"], old["ts"] * 1000, old["price"], old["volume"], old["source"], None]
    # what the pre-compact ingest script left behind: `SET <ns>:dedup:<event_id> <content> EX`
    redis_client.set(keys.dedup_prefix + old["event_id"], orjson.dumps(content), ex=3_600)
    clock = Clock(T0)
    with TestClient(create_app(small(settings), dedup_clock=clock)) as client:
        marker_ttl = redis_client.ttl(keys.dedup_legacy_marker)
        assert 0 < marker_ttl <= 60  # DEDUP_TTL: no pre-upgrade tick can come back later
        assert post(client, old)[1]["status"] == "duplicate"
        status, answer = post(client, {**old, "price": 1.25, "source": "other"})
        assert status == 409 and conflict_fields(answer) == ["event_id", "price", "source"]
        assert post(client, tick(2))[1]["status"] == "accepted"
        redis_client.delete(keys.dedup_legacy_marker)  # as when it expires
        assert post(client, old)[1]["status"] == "accepted"  # no longer consulted
    # a namespace the compact format already runs in is not scanned again (the start-up step
    # itself, without starting a second app)
    redis_client.set(keys.dedup_prefix + "dd-9", orjson.dumps(content), ex=3_600)
    asyncio.run(prepare(settings, keys))
    assert not redis_client.exists(keys.dedup_legacy_marker)


async def prepare(settings: Settings, keys: Keys) -> None:
    """The API's de-dup start-up step (`prepare_dedup`) for `small(settings)`'s layout."""
    small_settings = small(settings)
    layout = DedupLayout(small_settings.dedup_ttl, small_settings.dedup_generations,
                         small_settings.dedup_shards)  # fmt: skip
    client = AsyncRedis.from_url(settings.effective_redis_url)
    try:
        await dedup.prepare_dedup(client, keys, layout)
    finally:
        await client.aclose()


def test_a_layout_change_is_refused_while_the_old_layout_is_live(settings: Settings):
    first = tick(1)
    with TestClient(create_app(small(settings), dedup_clock=Clock(T0))) as client:
        assert post(client, first)[1]["status"] == "accepted"
    app = create_app(small(settings, dedup_shards=8), dedup_clock=Clock(T0))
    with pytest.raises(DedupLayoutChanged, match="DEDUP_SHARDS"), TestClient(app):
        pass
    with TestClient(create_app(small(settings), dedup_clock=Clock(T0 + 1))) as client:
        assert post(client, first)[1]["status"] == "duplicate"


def test_the_api_refuses_to_start_when_max_tick_age_plus_skew_exceeds_dedup_ttl(
    procs: Processes,
):
    proc = procs.spawn(
        "api",
        uvicorn_command("backend.api.app:create_app", procs.api_port),
        {"DEDUP_TTL": "600", "MAX_TICK_AGE": "600", "MAX_FUTURE_SKEW": "5"},
    )
    assert proc.wait(timeout=60) != 0
    log = procs.log_path("api").read_text()
    assert "MAX_TICK_AGE (600 s) + MAX_FUTURE_SKEW (5 s) must not exceed DEDUP_TTL (600 s)" in log


def test_a_keyspace_too_large_to_scan_in_time_is_assumed_to_hold_pre_upgrade_keys(
    settings: Settings, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up never walks a huge keyspace for long: when SCAN cannot tell within its budget,
    the legacy marker is set (a GET per new tick for DEDUP_TTL), never skipped."""
    keys = Keys.from_settings(settings)
    with redis_client.pipeline(transaction=False) as pipe:
        for i in range(25_000):  # other keys of the namespace: SCAN needs several pages
            pipe.set(f"{keys.namespace}:other:{i}", b"x", ex=600)
        pipe.execute()

    async def check(budget_s: float) -> bool | None:
        client = AsyncRedis.from_url(settings.effective_redis_url)
        try:
            return await dedup._any_key(client, keys.dedup_prefix + "*", budget_s)
        finally:
            await client.aclose()

    assert asyncio.run(check(60.0)) is False  # time to walk it all: there is none
    assert asyncio.run(check(0.0)) is None  # no time: it cannot tell
    monkeypatch.setattr(dedup, "SCAN_BUDGET_S", 0.0)
    asyncio.run(prepare(settings, keys))  # first start of the compact format here
    assert redis_client.exists(keys.dedup_legacy_marker)
