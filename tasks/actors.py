"""Actor registration: thin wrappers that decode a message and call the calc code.

Actors are created by `register_actors(broker, settings, redis)` rather than at import time, so
they bind to the broker we built (Dramatiq's documented pitfall) and tests can build their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage
from redis import Redis
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from backend.bus.alert_evaluation import AlertEvaluationStore
from backend.bus.alert_rules import AlertRuleMirror, RulesCache
from backend.bus.calc_claims import CalcClaims
from backend.bus.keys import (
    ALERTS_EVALUATE_ACTOR,
    ALERTS_EVALUATE_QUEUE,
    CALC_ACTOR,
    CALC_B_ACTOR,
    CALC_B_QUEUE,
    REBUILD_ACTOR,
    REBUILD_QUEUE,
    Keys,
)
from backend.bus.realtime import Ring
from backend.core.ticks import decode_tick
from backend.log_context import log_context, trace_fields
from backend.settings import WorkerSettings
from tasks.alerts_evaluate import EvaluateContext, evaluate_symbols
from tasks.calc import Batch, CalcContext, build_views
from tasks.calc_coalescing import Coalescer
from tasks.rebuild import Rebuilder


@dataclass(frozen=True)
class Actors:
    calc_ticks: dramatiq.Actor[Any, Any]
    calc_view: dramatiq.Actor[Any, Any]
    alerts_evaluate: dramatiq.Actor[Any, Any]
    rebuild_symbols: dramatiq.Actor[Any, Any]


# A rebuild reads a symbol's whole history: far longer than a calc step may take.
REBUILD_TIME_LIMIT_MS = 3_600_000

REDIS_OUTAGE_WAIT_S = 30.0  # below TimeLimit (60 s); longer outages go through Dramatiq's retries

# A calc step is one optimistic transaction, all or nothing, and idempotent: when Redis goes away
# mid-step it is simply run again once Redis is back. Waiting inside the actor keeps the message
# in hand; failing it instead would need Redis (to schedule the retry) at the very moment Redis
# is gone.
ride_out_redis_outage = retry(
    retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
    wait=wait_exponential(multiplier=0.05, max=1.0),
    stop=stop_after_delay(REDIS_OUTAGE_WAIT_S),
    reraise=True,
)


ClockUs = Callable[[], int]  # wall-clock time in epoch µs

log = logging.getLogger("tasks.calc")


def wall_clock_us() -> int:
    return time.time_ns() // 1_000


class MissingCurrentMessage(RuntimeError):
    """calc ran without Dramatiq's CurrentMessage middleware, so it cannot name its batch."""


def current_message() -> dramatiq.Message[Any]:
    """The running message: its id names its batch's done-marker.

    Without it every batch would share one marker and a later batch would be skipped as already
    applied, silently; so a broker built without CurrentMessage is an error, not a default.
    """
    message = CurrentMessage.get_current_message()
    if message is None:
        raise MissingCurrentMessage(
            "calc_ticks needs the dramatiq.middleware.CurrentMessage middleware on its broker "
            "(tasks.broker.build_broker adds it): without the message id, batches cannot be "
            "applied exactly once"
        )
    return message


def register_actors(
    broker: dramatiq.Broker,
    settings: WorkerSettings,
    redis: Redis,
    clock_us: ClockUs = wall_clock_us,
) -> Actors:
    """`clock_us` is calc's notion of now (view `updated_at`, staleness, latencies): injected
    so tests can run calc on simulated time (and alert evaluation's `now`: expiry, commit stamps).

    One `RulesCache` per process, shared by calc (which symbols have rules, so which record
    observations) and evaluation (the rules themselves)."""
    keys = Keys.from_settings(settings)
    rules = RulesCache(AlertRuleMirror(redis, keys), settings.alert_rules_refresh_s)
    ctx = CalcContext(
        redis=redis,
        keys=keys,
        ring=Ring.from_settings(settings),
        done_ttl_s=settings.dedup_ttl,
        stale_after_s=settings.stale_after,
        split=settings.calc_split,
        rules=rules,
    )
    alerts = EvaluateContext(
        store=AlertEvaluationStore(redis, keys, Ring.from_settings(settings)), rules=rules
    )

    claims = CalcClaims(
        redis, keys, max_messages=settings.calc_coalesce_messages,
        max_bytes=settings.calc_coalesce_bytes,
    )  # fmt: skip
    coalescer = Coalescer(
        ctx, claims, broker, ride_out_redis_outage, clock_us,
        linger_s=settings.calc_linger_ms / 1_000,
    )  # fmt: skip

    def calc_ticks(ticks: list[list[Any]], trace_ids: list[str] | None = None) -> None:
        """calc-a (+ calc-b unless CALC_SPLIT) for one batch of accepted ticks, and the calc
        messages queued behind it (tasks/calc_coalescing.py); `trace_ids`: the distinct trace
        ids of the requests they came in (the ingest script's)."""
        message = current_message()
        main = Batch(str(message.message_id), [decode_tick(raw) for raw in ticks])
        redis_id = message.options.get("redis_message_id")
        traces = trace_fields(trace_ids or ())
        with log_context(
            message_id=main.message_id, trace_ids=traces["trace_ids"],
            trace_id=traces.get("trace_id"),
        ):  # fmt: skip
            started = time.perf_counter()
            step = coalescer.apply(main, redis_id)
            if step.trace_ids:  # the step's line names every request it took in
                traces = trace_fields(dict.fromkeys([*(trace_ids or ()), *step.trace_ids]))
            with log_context(trace_ids=traces["trace_ids"], trace_id=traces.get("trace_id")):
                log_calc_batch(step.batches, step.applied, time.perf_counter() - started, traces)

    def calc_view(symbols: list[str]) -> None:
        """calc-b (CALC_SPLIT only): rebuild and publish W for these symbols."""
        ride_out_redis_outage(build_views)(ctx, symbols, clock_us())

    def alerts_evaluate(symbols: list[str]) -> None:
        """Evaluate the symbols' new observations against their rules (queue alerts.evaluate)."""
        ride_out_redis_outage(evaluate_symbols)(alerts, symbols, clock_us)

    rebuilder = Rebuilder.from_settings(settings, redis)

    def rebuild_symbols(symbols: list[str] | None = None) -> None:
        """Rebuild these symbols' state, window and view from PostgreSQL + the outbox (None:
        every symbol); sent by calc when it finds a known symbol's state lost, and by
        POST /admin/rebuild. Safe to redeliver: a rebuild only ever replaces a state by the
        exact one."""
        rebuilder.rebuild(symbols)

    options = {"broker": broker, "max_retries": settings.calc_max_retries}
    return Actors(
        calc_ticks=dramatiq.actor(
            calc_ticks, actor_name=CALC_ACTOR, queue_name=settings.queue_name, **options
        ),
        calc_view=dramatiq.actor(
            calc_view, actor_name=CALC_B_ACTOR, queue_name=CALC_B_QUEUE, **options
        ),
        alerts_evaluate=dramatiq.actor(
            alerts_evaluate,
            actor_name=ALERTS_EVALUATE_ACTOR,
            queue_name=ALERTS_EVALUATE_QUEUE,
            **options,
        ),
        rebuild_symbols=dramatiq.actor(
            rebuild_symbols,
            actor_name=REBUILD_ACTOR,
            queue_name=REBUILD_QUEUE,
            time_limit=REBUILD_TIME_LIMIT_MS,
            **options,
        ),
    )


def log_calc_batch(
    batches: Sequence[Batch], applied: bool, seconds: float, traces: dict[str, Any]
) -> None:
    """calc's one INFO line per step: the message in hand and those taken with it (the message
    id and trace ids come from the context)."""
    if not log.isEnabledFor(logging.INFO):
        return
    ticks = [tick for batch in batches for tick in batch.ticks]
    symbols = sorted({tick.symbol for tick in ticks})
    taken = [batch.message_id for batch in batches[1:]]
    log.info(
        "calc batch: %d ticks, %d symbols%s%s",
        len(ticks), len(symbols), f", {len(taken)} queued messages taken with it" if taken else "",
        "" if applied else " (redelivery: already applied)",
        extra={"ticks": len(ticks), "symbols": symbols, "applied": applied,
               "ms": round(seconds * 1000, 2), **({"coalesced": taken} if taken else {}),
               **traces},
    )  # fmt: skip
