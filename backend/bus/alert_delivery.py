"""Redis side of webhook delivery: per-host concurrency slots and each attempt's record.

Slots: a host gets at most `limit` attempts in flight across every delivery worker. A slot is a
lease (a member of the host's sorted set, scored by its expiry), not a lock: a worker killed
mid-attempt never releases it, and the lease simply runs out. A job whose host has no free slot
is not waited for: the actor sends it again a little later and its thread takes other work, so
one slow receiver can occupy at most `limit` threads.

Recording: every attempt outcome is one MULTI: its DeliveryRecord on the history stream, its
counters and, for a delivery, the latency histogram. The record and the counters never disagree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from redis import Redis

from backend.bus import stats
from backend.bus.alert_firings import queue_history
from backend.bus.keys import Keys
from backend.bus.lua import HostSlotAcquire
from backend.core.alerts.records import DeliveryJob, DeliveryRecord, DeliveryStatus
from backend.core.ticks import us_to_iso

ALERTS_DELIVERED = "alerts_delivered"
ALERTS_DELIVERY_RETRIES = "alerts_delivery_retries"
ALERTS_DELIVERY_FAILED = "alerts_delivery_failed"
ALERTS_DELIVERY_DEAD = "alerts_delivery_dead"
ALERTS_DELIVERY_BUSY = "alerts_delivery_host_busy"  # a job put back: its host had no free slot

COUNTER_FOR_STATUS: dict[DeliveryStatus, str] = {
    "delivered": ALERTS_DELIVERED,
    "retrying": ALERTS_DELIVERY_RETRIES,
    "failed": ALERTS_DELIVERY_FAILED,
    "dead": ALERTS_DELIVERY_DEAD,
}

# Firing → delivered latency (seconds), cumulative like the view latency histogram; retries
# make minutes possible, hence the longer tail.
DELIVERY_LATENCY_BUCKETS = (*stats.VIEW_LATENCY_BUCKETS, 30.0, 60.0, 300.0)
DELIVERY_LATENCY_PREFIX = "alert_delivery_latency_le_"
_BOUNDS_US = tuple(round(b * 1_000_000) for b in DELIVERY_LATENCY_BUCKETS)
_FIELDS = (
    *(f"{DELIVERY_LATENCY_PREFIX}{b}" for b in DELIVERY_LATENCY_BUCKETS),
    DELIVERY_LATENCY_PREFIX + stats.INF,
)


def delivery_latency_fields(latencies_us: Iterable[int]) -> dict[str, int]:
    """HINCRBY increments for the cumulative delivery-latency histogram (Prometheus-style: an
    observation counts in every bucket whose bound is >= it, and in `+Inf`)."""
    exact = [0] * len(_FIELDS)
    for latency in latencies_us:
        exact[bisect_left(_BOUNDS_US, max(latency, 0))] += 1
    fields: dict[str, int] = {}
    running = 0
    for name, count in zip(_FIELDS, exact, strict=True):
        running += count
        if running:
            fields[name] = running
    return fields


class HostSlots:
    """At most `limit` concurrent attempts per webhook host, across all workers."""

    def __init__(self, redis: Redis, keys: Keys, limit: int, lease_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.lease_ms = lease_ms
        self._acquire = HostSlotAcquire(redis)

    def acquire(self, host: str, token: str, now_ms: int) -> bool:
        """Take a slot for `token` until `now_ms + lease_ms`; False if the host is full."""
        return self._acquire(
            slots=self.keys.alert_host_slots(host),
            now_ms=now_ms,
            expires_ms=now_ms + self.lease_ms,
            limit=self.limit,
            token=token,
        )

    def release(self, host: str, token: str) -> None:
        self.redis.zrem(self.keys.alert_host_slots(host), token)

    def in_use(self, host: str, now_ms: int) -> int:
        """Live leases on `host` (for tests and probes)."""
        return int(self.redis.zcount(self.keys.alert_host_slots(host), now_ms + 1, "+inf"))


def record_attempt(
    redis: Redis,
    keys: Keys,
    job: DeliveryJob,
    status: DeliveryStatus,
    error: str | None,
    now_us: int,
) -> None:
    """One attempt's outcome, atomically: history record + counter (+ latency histogram when
    delivered). `latency_ms` is firing → now, retries and waits for a slot included."""
    latency_us = max(now_us - job.fired_us, 0)
    record = DeliveryRecord(
        alert_id=job.alert_id,
        channel=job.url,
        status=status,
        attempts=job.attempt,
        last_error=error,
        latency_ms=latency_us / 1000,
        at=us_to_iso(now_us),
    )
    counters = {COUNTER_FOR_STATUS[status]: 1}
    if status == "delivered":
        counters |= delivery_latency_fields([latency_us])
    with redis.pipeline(transaction=True) as pipe:
        queue_history(pipe, keys, record)
        stats.add_counters(pipe, keys.stats, counters)
        pipe.execute()


def count_busy(redis: Redis, keys: Keys) -> None:
    """A job put back because its host was full (not an attempt: no history record)."""
    redis.hincrby(keys.stats, ALERTS_DELIVERY_BUSY, 1)
