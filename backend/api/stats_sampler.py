"""Pipeline-wide samples: one every STATS_INTERVAL seconds, kept STATS_RETENTION seconds.

Each API process runs a `StatsSampler`. Every interval it first flushes the validation/503
rejections it counted in memory to the shared stats hash (the ingest hot path never pays a round
trip for them), then races the other replicas for the interval's slot (`SET … NX EX`): the one
that wins reads the pipeline's counters and gauges and appends the sample to a capped stream. So
with N replicas there is still one sample per slot, and /stats/history is the same from any.

`LedgerReader.gauges` (the ledger's one read) is the I/O, `build_sample` the pure shaping
(gauges → Sample dict); time comes from an injected clock and sleeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from backend.bus import alert_delivery, alert_evaluation, alert_firings, ledger, stats
from backend.bus.ledger import Gauges, LedgerReader
from backend.bus.samples import SamplesStore
from backend.core.feeder_liveness import decode_record, is_alive, received_us
from backend.core.ticks import us_to_iso
from backend.settings import ApiSettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # wall-clock seconds since the epoch
Sleeper = Callable[[float], Awaitable[None]]

# The alert pipeline's cumulative counters (written by evaluation, firing and delivery).
ALERT_COUNTERS = (
    alert_firings.ALERTS_FIRED,
    alert_firings.ALERTS_TEST_FIRED,
    alert_evaluation.ALERTS_OBSERVATIONS,
    alert_evaluation.ALERTS_RULES_CHECKED,
    alert_delivery.ALERTS_DELIVERED,
    alert_delivery.ALERTS_DELIVERY_RETRIES,
    alert_delivery.ALERTS_DELIVERY_FAILED,
    alert_delivery.ALERTS_DELIVERY_DEAD,
)
# Cumulative counters of a sample (0 when absent): integers, except the summed seconds.
INT_COUNTERS = (
    *ledger.INGEST_FIELDS,
    ledger.CALC_BATCHES,
    ledger.CALC_TICKS,
    ledger.LATE_TICKS,
    ledger.GAPS_OPENED,
    ledger.GAPS_CLOSED,
    ledger.ROWS_WRITTEN,
    ledger.FLUSH_COUNT,
    ledger.FLUSH_TICKS_SUM,
    *ALERT_COUNTERS,
)
FLOAT_COUNTERS = (ledger.FLUSH_SECONDS_SUM,)
SLOT_TTL_INTERVALS = 5  # a slot marker outlives any replica's late attempt at the same slot


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
        record = decode_record(raw)
        received = received_us(record)
        if received is None or not is_alive(received, now_us):
            continue
        alive += 1
        target += _rate(record.get("target_tps"))
        achieved += _rate(record.get("achieved_tps"))
    return {
        "feeders_alive": alive,
        "feeders_target_tps": round(target, 3),
        "feeders_achieved_tps": round(achieved, 3),
    }


def build_sample(gauges: Gauges, now_us: int) -> dict[str, Any]:
    """The Sample dict (the /stats and /stats/history contract) from the ledger's gauges."""
    values = gauges.counters
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
    delivery_le = {
        label: round(values.get(alert_delivery.DELIVERY_LATENCY_PREFIX + label, 0))
        for label in (*(str(b) for b in alert_delivery.DELIVERY_LATENCY_BUCKETS), stats.INF)
    }
    return {
        "ts": us_to_iso(now_us),
        "ts_us": now_us,
        "counters": counters,
        "rejected": rejected,
        "flush_seconds_le": flush_le,
        "view_latency_le": view_le,
        "alert_delivery_latency_le": delivery_le,
        "gauges": {
            "backlog_ticks": gauges.backlog_ticks,
            "queue_depth": gauges.queue_depth,
            "calc_b_depth": gauges.calc_b_depth,
            "dead_letters": gauges.dead_letters,
            "outbox_entries": gauges.outbox_entries,
            "outbox_pending": gauges.outbox_pending,
            "workers": gauges.workers,
            "alert_evaluations_waiting": gauges.alert_evaluations_waiting,
            "alert_deliveries_waiting": gauges.alert_deliveries_waiting,
            "alert_history_entries": gauges.alert_history_entries,
            **_feeder_gauges(gauges.feeder_statuses, now_us),
        },
    }


async def take_sample(ledger: LedgerReader, clock: Clock = time.time) -> dict[str, Any]:
    """A Sample of the whole pipeline, now (by `clock`). Raises RedisError."""
    now_s = clock()
    gauges = await ledger.gauges(now_ms=now_s * 1000)
    return build_sample(gauges, round(now_s * 1_000_000))


class StatsSampler:
    """Counts this process's rejections and, once per slot across replicas, records a sample.

    Time comes from `clock` and waiting from `sleep`, so tests drive the slots on simulated time.
    """

    def __init__(
        self,
        ledger: LedgerReader,
        samples: SamplesStore,
        settings: ApiSettings,
        *,
        clock: Clock = time.time,
        sleep: Sleeper = asyncio.sleep,
    ) -> None:
        self._ledger = ledger
        self._samples = samples
        self._clock = clock
        self._sleep = sleep
        self._interval = settings.stats_interval
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
            slot = int(self._clock() / self._interval)
            if slot != last_slot:
                last_slot = slot
                await self._round(slot)
            # Wake just after the next slot boundary, when the other replicas wake too.
            delay = (slot + 1) * self._interval - self._clock()
            await self._sleep(max(delay, 0.0) + 0.001)

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
        if not await self._samples.claim_slot(slot, ttl_s=self._slot_ttl):
            return False
        sample = await take_sample(self._ledger, self._clock)
        await self._samples.append(orjson.dumps(sample), slot=slot, maxlen=self._maxlen)
        return True

    async def flush_rejections(self) -> None:
        """Add the pending rejections to the stats hash in one MULTI; on failure keep them all.

        Counts that arrive while the MULTI is in flight stay pending: only what was sent is
        subtracted, and only after Redis applied it.
        """
        batch = self.pending
        if not batch:
            return
        await self._samples.add_rejections(batch)
        self._pending.subtract(batch)
        for reason in batch:
            if self._pending[reason] <= 0:
                del self._pending[reason]
