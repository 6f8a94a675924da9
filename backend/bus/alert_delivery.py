"""Redis side of webhook delivery: per-host concurrency slots and each attempt's record.

Slots: a host gets at most `limit` attempts in flight across every delivery worker. A slot is a
lease (a member of the host's sorted set, scored by its expiry), not a lock: a worker killed
mid-attempt never releases it, and the lease simply runs out. A job whose host has no free slot
is parked, in the same script as the failed acquire, on the host's list (its ready message kept
there) and its thread takes other work, so one slow receiver occupies at most `limit` threads and
its waiting jobs cost nothing: no re-send, no poll. Each release hands the freed slot to the
host's oldest parked job (reserved under the job's token, its message put on the deliver queue),
so a backlog drains at the rate the host answers, in order. A dead slot holder releases nothing:
`sweep` (a thread of each delivery worker) gives the host's free slots, once its lease expired,
to parked jobs the same way.

Recording: every attempt outcome is one MULTI: its DeliveryRecord on the history stream, its
counters and, for a delivery, the latency histogram. The record and the counters never disagree.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from redis import Redis

from backend.bus import stats
from backend.bus.alert_firings import queue_history
from backend.bus.ingest import dramatiq_message_parts
from backend.bus.keys import ALERTS_DELIVER_ACTOR, ALERTS_DELIVER_QUEUE, Keys
from backend.bus.lua import HostSlotAcquire, HostSlotRelease
from backend.core.alerts.records import DeliveryJob, DeliveryRecord, DeliveryStatus
from backend.core.ticks import us_to_iso

ALERTS_DELIVERED = "alerts_delivered"
ALERTS_DELIVERY_RETRIES = "alerts_delivery_retries"
ALERTS_DELIVERY_FAILED = "alerts_delivery_failed"
ALERTS_DELIVERY_DEAD = "alerts_delivery_dead"
ALERTS_DELIVERY_PARKED = "alerts_delivery_parked"  # a job parked: its host had no free slot
ALERTS_DELIVERY_UNPARKED = "alerts_delivery_unparked"  # a parked job moved back to the queue

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
    """HINCRBY increments for the cumulative delivery-latency histogram."""
    return stats.histogram_fields(latencies_us, _BOUNDS_US, _FIELDS)


def new_token() -> str:
    """A slot lease token: 32 hex characters (the parked entry's layout relies on the width)."""
    return uuid.uuid4().hex


def parked_entry(job: DeliveryJob) -> bytes:
    """What parking `job` stores: the token its slot will be reserved under, then the ready
    `alerts.deliver` message (id, body) carrying the job with that token and one more wait, so
    un-parking is a plain move in Lua."""
    token = new_token()
    message_id = str(uuid.uuid4())
    parked = job.model_copy(update={"slot": token, "waits": job.waits + 1})
    head, tail = dramatiq_message_parts(
        ALERTS_DELIVER_QUEUE, message_id, int(time.time() * 1000), ALERTS_DELIVER_ACTOR
    )
    return token.encode() + message_id.encode() + head + parked.model_dump_json().encode() + tail


class HostSlots:
    """At most `limit` concurrent attempts per webhook host, across all workers; jobs that find
    their host full park until a slot is handed to them."""

    def __init__(self, redis: Redis, keys: Keys, limit: int, lease_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.lease_ms = lease_ms
        self._acquire = HostSlotAcquire(redis)
        self._release = HostSlotRelease(redis)

    def acquire(self, host: str, job: DeliveryJob, now_ms: int) -> str | None:
        """Take a slot for `job` until `now_ms + lease_ms` (the one reserved for it, if still
        there) and return its token; or park the job (counted) and return None."""
        token = job.slot or new_token()
        taken = self._acquire(
            slots=self.keys.alert_host_slots(host),
            parked=self.keys.alert_parked(host),
            parked_hosts=self.keys.alert_parked_hosts,
            stats=self.keys.stats,
            now_ms=now_ms,
            expires_ms=now_ms + self.lease_ms,
            limit=self.limit,
            token=token,
            host=host,
            entry=parked_entry(job),
            parked_counter=ALERTS_DELIVERY_PARKED,
        )
        return token if taken else None

    def release(self, host: str, token: str, now_ms: int) -> int:
        """Free `token`'s slot ("" frees none) and hand the host's free slots to its oldest
        parked jobs; how many were moved to the deliver queue."""
        return self._release(
            slots=self.keys.alert_host_slots(host),
            parked=self.keys.alert_parked(host),
            parked_hosts=self.keys.alert_parked_hosts,
            queue_list=self.keys.queue_list(ALERTS_DELIVER_QUEUE),
            queue_messages=self.keys.queue_messages(ALERTS_DELIVER_QUEUE),
            stats=self.keys.stats,
            token=token,
            now_ms=now_ms,
            expires_ms=now_ms + self.lease_ms,
            limit=self.limit,
            host=host,
            unparked_counter=ALERTS_DELIVERY_UNPARKED,
        )

    def sweep(self, now_ms: int) -> int:
        """Un-park jobs stranded by a slot holder that died (its lease expired, nobody released):
        every host with parked jobs gets its free slots handed out. Each host's step is one
        script, so sweeps of several workers and releases never hand out a slot twice."""
        hosts = self.redis.zrange(self.keys.alert_parked_hosts, 0, -1)
        return sum(self.release(host.decode(), "", now_ms) for host in hosts)

    def in_use(self, host: str, now_ms: int) -> int:
        """Live leases on `host` (for tests and probes)."""
        return int(self.redis.zcount(self.keys.alert_host_slots(host), now_ms + 1, "+inf"))

    def parked(self, host: str) -> int:
        """Jobs parked for `host` (for tests and probes)."""
        return int(self.redis.llen(self.keys.alert_parked(host)))


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
