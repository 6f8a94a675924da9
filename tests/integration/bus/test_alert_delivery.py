"""Host slots and attempt records against real Redis."""

from __future__ import annotations

import pytest
from redis import Redis

from backend.bus.alert_delivery import (
    ALERTS_DELIVERED,
    ALERTS_DELIVERY_DEAD,
    DELIVERY_LATENCY_PREFIX,
    HostSlots,
    delivery_latency_fields,
    record_attempt,
)
from backend.bus.keys import Keys
from backend.core.alerts.records import DeliveryJob, decode_history_record
from backend.settings import Settings

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000


def test_slots_are_shared_by_every_worker_and_limited_per_host(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    a, b = (HostSlots(redis_client, keys, limit=2, lease_ms=10_000) for _ in range(2))
    assert a.acquire("h1", "t1", NOW_MS)
    assert b.acquire("h1", "t2", NOW_MS)
    assert not a.acquire("h1", "t3", NOW_MS)  # the limit holds across both "workers"
    assert b.acquire("h2", "t4", NOW_MS)  # another host has slots of its own
    b.release("h1", "t2")
    assert a.acquire("h1", "t3", NOW_MS)
    assert a.in_use("h1", NOW_MS) == 2


def test_a_dead_worker_s_lease_runs_out(settings: Settings, redis_client: Redis) -> None:
    keys = Keys.from_settings(settings)
    slots = HostSlots(redis_client, keys, limit=1, lease_ms=10_000)
    assert slots.acquire("h", "crashed", NOW_MS)  # never released
    assert not slots.acquire("h", "next", NOW_MS + 9_999)
    assert slots.acquire("h", "next", NOW_MS + 10_000)
    assert redis_client.pttl(keys.alert_host_slots("h")) > 0  # the set never outlives leases


def test_an_outcome_is_one_record_one_counter_and_the_latency(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    job = DeliveryJob(
        alert_id="a1", rule_id="r1", url="http://h/x", body="{}", attempt=3, fired_us=1_000_000
    )
    record_attempt(redis_client, keys, job, "delivered", None, now_us=1_750_000)
    record_attempt(redis_client, keys, job, "dead", "HTTP 503", now_us=2_000_000)
    entries = redis_client.xrange(keys.alert_history)
    first, second = (decode_history_record(fields[b"r"]) for _, fields in entries)
    assert first.kind == second.kind == "delivery"
    assert (first.status, first.attempts, first.latency_ms, first.channel) == (
        "delivered", 3, 750.0, "http://h/x",
    )  # fmt: skip
    assert (second.status, second.last_error) == ("dead", "HTTP 503")
    stats = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.stats).items()}
    assert stats[ALERTS_DELIVERED] == 1 and stats[ALERTS_DELIVERY_DEAD] == 1
    assert stats[DELIVERY_LATENCY_PREFIX + "1.0"] == 1
    assert DELIVERY_LATENCY_PREFIX + "0.5" not in stats


def test_latency_histogram_is_cumulative() -> None:
    fields = delivery_latency_fields([400_000, 2_000_000, 400_000_000])
    assert fields[DELIVERY_LATENCY_PREFIX + "0.5"] == 1
    assert fields[DELIVERY_LATENCY_PREFIX + "2.5"] == 2
    assert fields[DELIVERY_LATENCY_PREFIX + "300.0"] == 2
    assert fields[DELIVERY_LATENCY_PREFIX + "+Inf"] == 3
    assert delivery_latency_fields([]) == {}
