"""Host slots, parking and attempt records against real Redis."""

from __future__ import annotations

import json

import pytest
from redis import Redis

from backend.bus.alert_delivery import (
    ALERTS_DELIVERED,
    ALERTS_DELIVERY_DEAD,
    ALERTS_DELIVERY_PARKED,
    ALERTS_DELIVERY_UNPARKED,
    DELIVERY_LATENCY_PREFIX,
    HostSlots,
    delivery_latency_fields,
    record_attempt,
)
from backend.bus.keys import ALERTS_DELIVER_QUEUE, Keys
from backend.core.alerts.records import DeliveryJob, decode_history_record
from backend.settings import Settings

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000


def job(n: int, host: str = "h1") -> DeliveryJob:
    return DeliveryJob(
        alert_id=f"a{n}", rule_id="r1", url=f"http://{host}/x", body="{}", fired_us=1_000_000
    )


def queued_jobs(redis: Redis, keys: Keys) -> list[DeliveryJob]:
    """The jobs of the messages on the deliver queue, in queue order."""
    ids = redis.lrange(keys.queue_list(ALERTS_DELIVER_QUEUE), 0, -1)
    bodies = redis.hmget(keys.queue_messages(ALERTS_DELIVER_QUEUE), ids)
    return [DeliveryJob.model_validate(json.loads(b)["args"][0][0]) for b in bodies]


def counters(redis: Redis, keys: Keys) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(keys.stats).items()}


def test_slots_are_shared_by_every_worker_and_limited_per_host(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    a, b = (HostSlots(redis_client, keys, limit=2, lease_ms=10_000) for _ in range(2))
    assert a.acquire("h1", job(1), NOW_MS)
    t2 = b.acquire("h1", job(2), NOW_MS)
    assert t2 is not None
    assert a.acquire("h1", job(3), NOW_MS) is None  # the limit holds across both "workers"
    assert b.acquire("h2", job(4, "h2"), NOW_MS)  # another host has slots of its own
    assert a.parked("h1") == 1 and a.parked("h2") == 0
    assert b.release("h1", t2, NOW_MS) == 1  # the freed slot goes to the parked job
    assert a.in_use("h1", NOW_MS) == 2  # reserved for it: nobody else can take it meanwhile
    assert a.acquire("h1", job(5), NOW_MS) is None
    (moved,) = queued_jobs(redis_client, keys)
    assert (moved.alert_id, moved.waits) == ("a3", 1)
    assert a.acquire("h1", moved, NOW_MS) == moved.slot  # it takes its reserved slot


def test_parked_jobs_leave_in_order_one_per_freed_slot(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    slots = HostSlots(redis_client, keys, limit=1, lease_ms=10_000)
    holder = slots.acquire("h1", job(0), NOW_MS)
    assert holder is not None
    for n in range(1, 6):
        assert slots.acquire("h1", job(n), NOW_MS) is None
    assert redis_client.zrange(keys.alert_parked_hosts, 0, -1) == [b"h1"]
    assert slots.sweep(NOW_MS) == 0  # the holder's lease is live: nothing is stranded
    token = holder
    for n in range(1, 6):
        assert slots.release("h1", token, NOW_MS) == 1
        moved = queued_jobs(redis_client, keys)[-1]
        assert moved.alert_id == f"a{n}"  # oldest first
        token = slots.acquire("h1", moved, NOW_MS)
        assert token == moved.slot
    assert slots.release("h1", token, NOW_MS) == 0
    assert redis_client.zcard(keys.alert_parked_hosts) == 0  # no parked job left: host dropped
    stats = counters(redis_client, keys)
    assert stats[ALERTS_DELIVERY_PARKED] == stats[ALERTS_DELIVERY_UNPARKED] == 5


def test_a_dead_holder_s_parked_jobs_are_swept_once_its_lease_runs_out(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    a, b = (HostSlots(redis_client, keys, limit=2, lease_ms=10_000) for _ in range(2))
    assert a.acquire("h", job(0, "h"), NOW_MS) and a.acquire("h", job(1, "h"), NOW_MS)
    for n in range(2, 7):  # never released: their holder "died"
        assert a.acquire("h", job(n, "h"), NOW_MS) is None
    assert a.sweep(NOW_MS + 9_999) == 0
    # Two workers sweep at once: the free slots are handed out once, not once per sweeper.
    assert a.sweep(NOW_MS + 10_000) + b.sweep(NOW_MS + 10_000) == 2
    assert [j.alert_id for j in queued_jobs(redis_client, keys)] == ["a2", "a3"]
    assert a.parked("h") == 3
    assert redis_client.pttl(keys.alert_host_slots("h")) > 0  # the set never outlives leases


def test_a_reservation_not_taken_in_time_runs_out_like_any_lease(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    slots = HostSlots(redis_client, keys, limit=1, lease_ms=10_000)
    holder = slots.acquire("h", job(0, "h"), NOW_MS)
    assert holder is not None and slots.acquire("h", job(1, "h"), NOW_MS) is None
    slots.release("h", holder, NOW_MS)
    (moved,) = queued_jobs(redis_client, keys)
    assert slots.acquire("h", job(2, "h"), NOW_MS + 9_999) is None  # reserved for `moved`
    late = slots.acquire("h", moved, NOW_MS + 10_001)  # its reservation expired: acquires anew
    assert late == moved.slot


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
