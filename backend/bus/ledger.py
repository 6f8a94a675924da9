"""The pipeline's ledger: the counter names, the backlog formula and the one read of the gauges.

Every process adds to one stats hash (`Keys.stats`): the ingest script counts what it accepted,
calc what it applied, the dead-letter middleware what it gave up on, the flusher what it wrote.
Ticks waiting for calc are `accepted - calc - dead`, ticks waiting for Postgres `outbox`; their
sum is the backlog that MAX_BACKLOG caps (`ingest.lua` does the same arithmetic, atomically, before
it accepts a batch). `read_gauges()` is the one read that /metrics, /stats and the benchmarks
share, so they cannot disagree about what is waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from backend.bus.alert_delivery import ALERTS_DELIVERY_PARKED, ALERTS_DELIVERY_UNPARKED
from backend.bus.keys import (
    ALERTS_DELIVER_QUEUE,
    ALERTS_DELIVER_RETRY_QUEUE,
    ALERTS_EVALUATE_QUEUE,
    CALC_B_QUEUE,
    OUTBOX_GROUP,
    Keys,
)
from backend.bus.stats import parse

# --- the counters (fields of the stats hash) ------------------------------------------------------
INGEST_ACCEPTED = "ingest_accepted"  # ticks handed to calc and the outbox (ingest.lua)
INGEST_DUPLICATE = "ingest_duplicate"
INGEST_CONFLICT = "ingest_conflict"
INGEST_SHED = "ingest_shed"  # refused at MAX_BACKLOG
CALC_BATCHES = "calc_batches"
CALC_TICKS = "calc_ticks"  # ticks applied by calc, in the transaction that applies them
# calc transactions committed (one per symbol per step; a step takes every message queued
# together): calc_batches / calc_steps × symbols is how much coalescing saves.
CALC_STEPS = "calc_steps"
CALC_DEAD_TICKS = "calc_dead_ticks"  # ticks of dead-lettered calc batches, until requeued
CALC_CONFLICTS = "calc_conflicts"  # calc transactions redone after a concurrent write
LATE_TICKS = "late_ticks"
GAPS_OPENED = "gaps_opened"
GAPS_CLOSED = "gaps_closed"
REBUILDS_STARTED = "rebuilds_started"  # symbol rebuilds begun (tasks/rebuild.py)
REBUILDS_FINISHED = "rebuilds_finished"  # symbol rebuilds whose state was swapped in
REBUILD_TICKS_READ = "rebuild_ticks_read"  # ticks read from PostgreSQL + outbox by rebuilds
REBUILD_BUFFERED = "rebuild_buffered"  # ticks calc kept in a rebuild fence instead of merging
REBUILD_SKIPPED = "rebuild_skipped"  # ticks calc dropped: a rebuild had already counted them
OUTBOX_TICKS = "outbox_ticks"  # ticks staged for Postgres, taken off when their entry is deleted
DEAD_LETTERS_REQUEUED = "dead_letters_requeued"
ROWS_WRITTEN = "rows_written"
FLUSH_COUNT = "flush_count"
FLUSH_TICKS_SUM = "flush_ticks_sum"
FLUSH_SECONDS_SUM = "flush_seconds_sum"

INGEST_FIELDS = (INGEST_ACCEPTED, INGEST_DUPLICATE, INGEST_CONFLICT, INGEST_SHED)


def backlog_ticks(counters: Mapping[str, float]) -> int:
    """Ticks waiting for calc plus ticks waiting for Postgres: what MAX_BACKLOG is checked
    against. A dead-lettered batch is not waiting (it needs an operator), so it is not counted."""
    waiting_calc = (
        counters.get(INGEST_ACCEPTED, 0)
        - counters.get(CALC_TICKS, 0)
        - counters.get(CALC_DEAD_TICKS, 0)
    )
    return round(max(waiting_calc, 0) + max(counters.get(OUTBOX_TICKS, 0), 0))


def calc_backlog_ticks(counters: Mapping[str, float]) -> int:
    """Live ticks accepted and not yet applied by calc (dead letters excluded): what a replay
    checks before each group, to give way to live calc."""
    waiting = (
        counters.get(INGEST_ACCEPTED, 0)
        - counters.get(CALC_TICKS, 0)
        - counters.get(CALC_DEAD_TICKS, 0)
    )
    return round(max(waiting, 0))


@dataclass(frozen=True, slots=True)
class Gauges:
    """The pipeline at one moment: its counters and what is waiting where."""

    counters: dict[str, float]
    queue_depth: int  # messages waiting in the calc queue
    calc_b_depth: int  # messages waiting in calc.a.done (CALC_SPLIT)
    dead_letters_calc: int
    dead_letters_calc_b: int
    outbox_entries: int  # outbox batches not yet in Postgres
    outbox_pending: int  # read by a flusher, not yet committed
    workers: int  # worker processes with a recent heartbeat
    feeder_statuses: dict[bytes, bytes] = field(default_factory=dict)  # raw, per feeder_id
    alert_evaluations_waiting: int = 0  # messages in alerts.evaluate
    alert_deliveries_waiting: int = 0  # messages in alerts.deliver and alerts.deliver.retry
    alert_history_entries: int = 0  # firing/delivery records not yet in PostgreSQL

    @property
    def alert_deliveries_parked(self) -> int:
        """Webhook jobs parked until their host frees a slot (parked minus un-parked, both
        counted by the scripts that move them, so the difference is exact)."""
        parked = self.counters.get(ALERTS_DELIVERY_PARKED, 0)
        return round(max(parked - self.counters.get(ALERTS_DELIVERY_UNPARKED, 0), 0))

    @property
    def dead_letters(self) -> int:
        """Dead-lettered messages of both calc queues."""
        return self.dead_letters_calc + self.dead_letters_calc_b

    @property
    def backlog_ticks(self) -> int:
        return backlog_ticks(self.counters)


def shape_gauges(answers: list[Any], outbox_pending: int) -> Gauges:
    """Gauges from the answers of the commands `_queue_reads` queued, in order (pure)."""
    raw_stats, depth, b_depth, dead, b_dead, outbox, workers, feeders, *alerts = answers
    evaluate, deliver, deliver_retry, history = (*alerts, 0, 0, 0, 0)[:4]
    return Gauges(
        counters=parse(raw_stats),
        queue_depth=int(depth),
        calc_b_depth=int(b_depth),
        dead_letters_calc=int(dead),
        dead_letters_calc_b=int(b_dead),
        outbox_entries=int(outbox),
        outbox_pending=outbox_pending if outbox else 0,
        workers=int(workers),
        feeder_statuses=dict(feeders),
        alert_evaluations_waiting=int(evaluate),
        alert_deliveries_waiting=int(deliver) + int(deliver_retry),
        alert_history_entries=int(history),
    )


def _queue_reads(pipe: Any, keys: Keys, horizon_ms: float) -> None:
    pipe.hgetall(keys.stats)
    pipe.llen(keys.queue_list())
    pipe.llen(keys.queue_list(CALC_B_QUEUE))
    pipe.zcard(keys.dead_letters())
    pipe.zcard(keys.dead_letters(CALC_B_QUEUE))
    pipe.xlen(keys.outbox)
    pipe.zcount(keys.heartbeats, horizon_ms, "+inf")
    pipe.hgetall(keys.feeder_status)
    pipe.llen(keys.queue_list(ALERTS_EVALUATE_QUEUE))
    pipe.llen(keys.queue_list(ALERTS_DELIVER_QUEUE))
    pipe.llen(keys.queue_list(ALERTS_DELIVER_RETRY_QUEUE))
    pipe.xlen(keys.alert_history)


async def read_gauges(
    redis: AsyncRedis, keys: Keys, *, heartbeat_timeout_ms: int, now_ms: float
) -> Gauges:
    """One round trip (two when the outbox is not empty), its reads one consistent snapshot
    (MULTI). Raises RedisError."""
    async with redis.pipeline(transaction=True) as pipe:
        _queue_reads(pipe, keys, now_ms - heartbeat_timeout_ms)
        answers = await pipe.execute()
    pending = 0
    if answers[5]:
        try:
            pending = (await redis.xpending(keys.outbox, OUTBOX_GROUP))["pending"]
        except RedisError:
            pending = 0  # no consumer group yet: nothing is pending
    return shape_gauges(answers, pending)


class LedgerReader:
    """`read_gauges` bound to one client and namespace: the API's gateway to the ledger."""

    def __init__(self, redis: AsyncRedis, keys: Keys, *, heartbeat_timeout_ms: int) -> None:
        self._redis = redis
        self._keys = keys
        self._heartbeat_timeout_ms = heartbeat_timeout_ms

    async def gauges(self, *, now_ms: float) -> Gauges:
        return await read_gauges(
            self._redis, self._keys, heartbeat_timeout_ms=self._heartbeat_timeout_ms, now_ms=now_ms
        )


def read_gauges_sync(
    redis: Redis, keys: Keys, *, heartbeat_timeout_ms: int, now_ms: float
) -> Gauges:
    """`read_gauges` for synchronous callers (the benchmarks' samplers)."""
    with redis.pipeline(transaction=True) as pipe:
        _queue_reads(pipe, keys, now_ms - heartbeat_timeout_ms)
        answers = pipe.execute()
    pending = 0
    if answers[5]:
        try:
            pending = redis.xpending(keys.outbox, OUTBOX_GROUP)["pending"]
        except RedisError:
            pending = 0
    return shape_gauges(answers, pending)
