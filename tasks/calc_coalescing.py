"""calc coalescing: one step applies the calc message in hand and the ones queued behind it.

Per tick, a calc message carries what one group commit of the API took together: one or two ticks
at a steady 1,000 ticks/s. Each message applied on its own pays a fetch, a transaction per symbol
(WATCH, a read, MULTI/EXEC with the window, state, view and ring writes) and an ack. When calc
falls behind, the messages waiting are exactly what can be taken together: a step claims them
(`backend.bus.calc_claims`, into the worker's own Dramatiq ack set, as Dramatiq's fetch does) and
applies them all with `apply_batches`, one transaction per symbol. When calc keeps up, nothing
is waiting and a step is one message, as before: latency is never traded for batching.

Exactness is calc's as before: each message's done-marker names the symbols it applied, so a
worker dying anywhere leaves every claimed message to be redelivered (its heartbeat stops) and
applied only where it was not. A step that fails releases its claimed messages to the queue
marked solo, applies the main message on its own (so only its own failure counts against its
retries), and each released message then runs on its own, through Dramatiq's retries and dead
letters, never failing an innocent message's step again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from redis import RedisError

from backend.bus.calc_claims import CalcClaims, Claimed
from backend.bus.keys import CALC_ACTOR
from backend.core.ticks import decode_tick
from tasks.calc import Batch, CalcContext, SymbolsFailed, apply_batches

log = logging.getLogger("tasks.calc")

Retrying = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True, slots=True)
class Taken:
    """A claimed message, decoded."""

    claimed: Claimed
    batch: Batch
    trace_ids: list[str]


@dataclass(frozen=True, slots=True)
class StepResult:
    applied: bool
    batches: list[Batch]  # the main message's first, then each claimed one applied with it
    trace_ids: list[str]  # the claimed messages' (the main message's are the caller's)


class Coalescer:
    """Applies a calc message together with the ones queued behind it (see the module doc)."""

    def __init__(
        self,
        ctx: CalcContext,
        claims: CalcClaims,
        broker: dramatiq.Broker,
        retrying: Retrying,
        clock_ms: Callable[[], int],
    ) -> None:
        self._ctx = ctx
        self._claims = claims
        self._broker = broker
        self._retrying = retrying
        self._clock_ms = clock_ms

    def apply(self, main: Batch, redis_id: str | None, now_us: int) -> StepResult:
        worker_id = getattr(self._broker, "broker_id", None)
        taken: list[Taken] = []
        if self._claims.enabled and redis_id and worker_id:
            taken = self._take(worker_id, redis_id)
        if not taken:
            applied = self._retrying(apply_batches)(self._ctx, [main], now_us)
            return StepResult(applied, [main], [])
        assert worker_id is not None
        batches = [main, *(t.batch for t in taken)]
        ids = [t.claimed.redis_id for t in taken]
        try:
            applied = self._retrying(apply_batches)(self._ctx, batches, now_us)
        except SymbolsFailed:
            # Some message of the step is poison: each claimed one will run alone; this one
            # now runs alone too, so its retries count only its own failures.
            self._settle(worker_id, "release", ids)
            log.warning("calc: coalesced step failed; %d messages released to run alone", len(ids))
            applied = self._retrying(apply_batches)(self._ctx, [main], now_us)
            return StepResult(applied, [main], [])
        except BaseException:  # Redis gone for good, a time limit, shutdown: give them back
            self._settle(worker_id, "release", ids)
            raise
        self._settle(worker_id, "ack", ids)
        return StepResult(applied, batches, [tid for t in taken for tid in t.trace_ids])

    def _take(self, worker_id: str, redis_id: str) -> list[Taken]:
        try:
            claim = self._claims.take(worker_id, redis_id, self._clock_ms())
        except RedisError:
            self._lost_claims("claim")  # a lost reply may have claimed some
            return []
        taken: list[Taken] = []
        foreign: list[str] = []
        for claimed in claim.messages:
            decoded = _decode(claimed)
            if decoded is None:
                foreign.append(claimed.redis_id)
            else:
                taken.append(decoded)
        if foreign:  # not a calc message we can read: let Dramatiq's fetch have it, alone
            self._settle(worker_id, "release", foreign)
        return taken

    def _settle(self, worker_id: str, command: str, redis_ids: list[str]) -> None:
        try:
            if command == "ack":
                self._claims.ack(worker_id, redis_ids)
            else:
                self._claims.release(worker_id, redis_ids)
        except RedisError:
            # Unsettled claims sit in our ack set: under a fresh id they come back by maintenance
            # (already applied ones are then skipped by their done-markers).
            self._lost_claims(command)

    def _lost_claims(self, during: str) -> None:
        renew = getattr(self._broker, "renew_identity", None)
        if renew is not None:
            renew(f"calc {during}")


def _decode(claimed: Claimed) -> Taken | None:
    try:
        message = dramatiq.Message.decode(claimed.body)
        if message.actor_name != CALC_ACTOR:
            return None
        raw_ticks, *rest = message.args
        ticks = [decode_tick(raw) for raw in raw_ticks]
        trace_ids = list(rest[0] or ()) if rest else []
    except Exception:
        log.warning("calc: claimed message %s is unreadable; released", claimed.redis_id)
        return None
    return Taken(claimed, Batch(str(message.message_id), ticks), trace_ids)
