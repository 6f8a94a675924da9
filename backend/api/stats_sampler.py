"""Pipeline-wide samples: one every STATS_INTERVAL seconds, kept STATS_RETENTION seconds.

Each API process runs a `StatsSampler`. Every interval it first flushes the validation/503
rejections it counted in memory to the shared stats hash (the ingest hot path never pays a round
trip for them), then races the other replicas for the interval's slot (`SET … NX EX`): the one
that wins reads the pipeline's counters and gauges and appends the sample to a capped stream. So
with N replicas there is still one sample per slot, and /stats/history is the same from any.

`read_readings` is the I/O, `build_sample` the pure shaping (raw Redis answers → Sample dict).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.api.routes.feeder import ALIVE_WITHIN_S, received_us
from backend.bus import stats
from backend.bus.keys import CALC_B_QUEUE, OUTBOX_GROUP, Keys
from backend.config import Settings
from backend.core.ticks import us_to_iso

log = logging.getLogger(__name__)

# Cumulative counters of a sample (0 when absent): integers, except the summed seconds.
INT_COUNTERS = (
    *stats.INGEST_FIELDS,
    "calc_batches",
    "calc_ticks",
    "late_ticks",
    "gaps_opened",
    "gaps_closed",
    "rows_written",
    "flush_count",
    "flush_ticks_sum",
)
FLOAT_COUNTERS = ("flush_seconds_sum",)
SLOT_TTL_INTERVALS = 5  # a slot marker outlives any replica's late attempt at the same slot


@dataclass(frozen=True, slots=True)
class Readings:
    """Redis's raw answers for one sample: what `read_readings` fetches, `build_sample` shapes."""

    stats: dict[bytes, bytes]
    queue_depth: int
    calc_b_depth: int
    dead_letters: int
    outbox_entries: int
    outbox_pending: int
    workers: int
    feeders: dict[bytes, bytes]


def _rate(value: Any) -> float:
    """A reported TPS, or 0 for anything that is not a finite non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) and value >= 0 else 0.0


def _feeder_gauges(feeders: dict[bytes, bytes], now_us: int) -> dict[str, Any]:
    """Alive feeders (reported within ALIVE_WITHIN_S, as GET /feeder/status) and their TPS sums."""
    alive = 0
    target = achieved = 0.0
    for raw in feeders.values():
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        received = received_us(record)
        if received is None or now_us - received > ALIVE_WITHIN_S * 1_000_000:
            continue
        alive += 1
        target += _rate(record.get("target_tps"))
        achieved += _rate(record.get("achieved_tps"))
    return {
        "feeders_alive": alive,
        "feeders_target_tps": round(target, 3),
        "feeders_achieved_tps": round(achieved, 3),
    }


def backlog_ticks(values: dict[str, float]) -> int:
    """Ticks waiting for calc plus ticks waiting for Postgres: what MAX_BACKLOG is checked against
    (the same arithmetic as the ingest script's)."""
    waiting_calc = (
        values.get("ingest_accepted", 0)
        - values.get("calc_ticks", 0)
        - values.get("calc_dead_ticks", 0)
    )
    return round(max(waiting_calc, 0) + max(values.get("outbox_ticks", 0), 0))


def build_sample(readings: Readings, now_us: int) -> dict[str, Any]:
    """The Sample dict (the /stats and /stats/history contract) from raw Redis answers."""
    values = stats.parse(readings.stats)
    counters: dict[str, Any] = {name: round(values.get(name, 0)) for name in INT_COUNTERS}
    counters.update({name: values.get(name, 0.0) for name in FLOAT_COUNTERS})
    rejected = {
        name.removeprefix(stats.REJECTED_PREFIX): round(value)
        for name, value in sorted(values.items())
        if name.startswith(stats.REJECTED_PREFIX)
    }
    flush_le = {
        str(bound): round(values.get(f"flush_seconds_le_{bound}", 0))
        for bound in stats.FLUSH_BUCKETS
    }
    view_le = {
        label: round(values.get(stats.VIEW_LATENCY_PREFIX + label, 0))
        for label in (*(str(b) for b in stats.VIEW_LATENCY_BUCKETS), stats.INF)
    }
    return {
        "ts": us_to_iso(now_us),
        "ts_us": now_us,
        "counters": counters,
        "rejected": rejected,
        "flush_seconds_le": flush_le,
        "view_latency_le": view_le,
        "gauges": {
            "backlog_ticks": backlog_ticks(values),
            "queue_depth": readings.queue_depth,
            "calc_b_depth": readings.calc_b_depth,
            "dead_letters": readings.dead_letters,
            "outbox_entries": readings.outbox_entries,
            "outbox_pending": readings.outbox_pending,
            "workers": readings.workers,
            **_feeder_gauges(readings.feeders, now_us),
        },
    }


async def read_readings(redis: Redis, keys: Keys, heartbeat_timeout_ms: int) -> Readings:
    """One pipelined round trip (two when the outbox is not empty). Raises RedisError."""
    horizon_ms = time.time() * 1000 - heartbeat_timeout_ms
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.stats)
        pipe.llen(keys.queue_list())
        pipe.llen(keys.queue_list(CALC_B_QUEUE))
        pipe.zcard(keys.dead_letters())
        pipe.zcard(keys.dead_letters(CALC_B_QUEUE))
        pipe.xlen(keys.outbox)
        pipe.zcount(keys.heartbeats, horizon_ms, "+inf")
        pipe.hgetall(keys.feeder_status)
        raw_stats, depth, b_depth, dead, b_dead, outbox, workers, feeders = await pipe.execute()
    pending = 0
    if outbox:
        try:
            pending = (await redis.xpending(keys.outbox, OUTBOX_GROUP))["pending"]
        except RedisError:
            pending = 0  # no consumer group yet: nothing is pending
    return Readings(
        stats=raw_stats,
        queue_depth=depth,
        calc_b_depth=b_depth,
        dead_letters=dead + b_dead,
        outbox_entries=outbox,
        outbox_pending=pending,
        workers=workers,
        feeders=feeders,
    )


async def take_sample(redis: Redis, keys: Keys, heartbeat_timeout_ms: int) -> dict[str, Any]:
    """A Sample of the whole pipeline, now. Raises RedisError."""
    readings = await read_readings(redis, keys, heartbeat_timeout_ms)
    return build_sample(readings, time.time_ns() // 1_000)


class StatsSampler:
    """Counts this process's rejections and, once per slot across replicas, records a sample."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self._redis = redis
        self._keys = keys
        self._interval = settings.stats_interval
        self._heartbeat_timeout_ms = settings.heartbeat_timeout_ms
        self._slot_ttl = max(1, math.ceil(settings.stats_interval * SLOT_TTL_INTERVALS))
        self._maxlen = max(1, math.ceil(settings.stats_retention / settings.stats_interval))
        self._pending: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    # --- the ingest side: in memory only, no I/O -------------------------------------------
    def reject(self, field: str, count: int = 1) -> None:
        """Count `count` rejected ticks under the reason for `field` (flushed next round)."""
        self._pending[stats.rejection_reason(field)] += count

    @property
    def pending(self) -> dict[str, int]:
        """Rejections counted here and not yet in Redis."""
        return {reason: n for reason, n in self._pending.items() if n > 0}

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stats-sampler")

    async def stop(self) -> None:
        """Stop the loop, then flush what is pending once more (best effort) so a clean
        shutdown loses no counts."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush_rejections(), timeout=2)

    async def _run(self) -> None:
        last_slot: int | None = None
        while True:
            slot = int(time.time() / self._interval)
            if slot != last_slot:
                last_slot = slot
                await self._round(slot)
            # Wake just after the next slot boundary, when the other replicas wake too.
            delay = (slot + 1) * self._interval - time.time()
            await asyncio.sleep(max(delay, 0.0) + 0.001)

    async def _round(self, slot: int) -> None:
        """`run_once`, never raising: the API must outlive any Redis outage (logged once)."""
        try:
            await asyncio.wait_for(self.run_once(slot), timeout=max(2.0, self._interval))
        except Exception as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    "stats sampler: round failed (%s: %s); rejections kept (%d), retrying "
                    "every %.1fs",
                    type(exc).__name__,
                    exc,
                    sum(self.pending.values()),
                    self._interval,
                    exc_info=not isinstance(exc, RedisError | OSError | TimeoutError),
                )
            return
        if self._failing:
            self._failing = False
            log.info("stats sampler: recovered")

    # --- one round -------------------------------------------------------------------------
    async def run_once(self, slot: int) -> bool:
        """Flush rejections; if this replica wins `slot`, append a sample. True if it did."""
        await self.flush_rejections()
        won = await self._redis.set(self._keys.stats_slot(slot), b"1", nx=True, ex=self._slot_ttl)
        if not won:
            return False
        sample = await take_sample(self._redis, self._keys, self._heartbeat_timeout_ms)
        await self._redis.xadd(
            self._keys.stats_samples,
            {"s": orjson.dumps(sample), "slot": slot},
            maxlen=self._maxlen,
            approximate=True,
        )
        return True

    async def flush_rejections(self) -> None:
        """Add the pending rejections to the stats hash in one MULTI; on failure keep them all.

        Counts that arrive while the MULTI is in flight stay pending: only what was sent is
        subtracted, and only after Redis applied it.
        """
        batch = self.pending
        if not batch:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            for reason, count in batch.items():
                pipe.hincrby(self._keys.stats, stats.REJECTED_PREFIX + reason, count)
            await pipe.execute()
        self._pending.subtract(batch)
        for reason in batch:
            if self._pending[reason] <= 0:
                del self._pending[reason]
