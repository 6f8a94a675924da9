"""calc coalescing: one step applies the calc messages in hand and the ones queued behind them.

Per tick, a calc message carries what one group commit of the API took together: one or two ticks
at a steady 1,000 ticks/s. Each message applied on its own pays a fetch, a transaction per symbol
(WATCH, a read, MULTI/EXEC with the window, state, view and ring writes) and an ack. So a worker
process applies what it has together:
- its threads' calc messages join one group; one thread (the leader) lingers `CALC_LINGER_MS` so
  that messages arriving meanwhile join too, then runs one step for the group while the others
  wait for its outcome (the API's group commit, on the other side of the queue);
- the step also claims the messages queued in Redis behind them (`backend.bus.calc_claims`, into
  the worker's own Dramatiq ack set, as Dramatiq's fetch does), up to `CALC_COALESCE_MESSAGES`;
- and applies everything with `apply_batches`: one transaction per symbol.
Under load the queue is long and steps are large; when idle a step is one message plus the linger.

Exactness is calc's as before: each message's done-marker names the symbols it applied, so a
worker dying anywhere leaves every claimed message to be redelivered (its heartbeat stops) and
applied only where it was not. A step that fails releases its claimed messages to the queue
marked solo, and each message in hand is then applied by its own thread, alone (so only its own
failure counts against its retries); the released ones run alone too, through Dramatiq's retries
and dead letters, never failing an innocent message's step again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    batches: list[Batch]  # this message's first, then the others of its step when it led it
    trace_ids: list[str]  # those others' (this message's own are the caller's)


@dataclass(eq=False)
class _InHand:
    """A message a thread of this process holds, waiting for the step that applies it."""

    batch: Batch
    redis_id: str | None
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # handed the lead: run the next step
    holds_lead: bool = False  # leading now (lingering or applying), or about to
    alone: bool = False  # not applied by a shared step: apply it on its own
    result: StepResult | None = None
    error: BaseException | None = None

    def settle(self, *, result: StepResult | None = None, error: BaseException | None = None,
               alone: bool = False) -> None:  # fmt: skip
        self.result, self.error, self.alone = result, error, alone
        self.ready.set()


class Coalescer:
    """Applies the calc messages of a worker process's threads, and those queued behind them, in
    shared steps (see the module doc). One per process."""

    def __init__(
        self,
        ctx: CalcContext,
        claims: CalcClaims,
        broker: dramatiq.Broker,
        retrying: Retrying,
        clock_us: Callable[[], int],
        linger_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ctx = ctx
        self._claims = claims
        self._broker = broker
        self._retrying = retrying
        self._clock_us = clock_us
        self._linger_s = linger_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._waiting: list[_InHand] = []
        self._leader = False  # a thread is leading a step (lingering or applying)

    @property
    def waiting(self) -> int:
        """Messages in hand waiting for a step to take them."""
        with self._lock:
            return len(self._waiting)

    def apply(self, main: Batch, redis_id: str | None) -> StepResult:
        """Apply `main` (the message this thread holds) in a step; raises what its own
        application raised."""
        if not self._claims.enabled:
            return self._alone(main)
        me = _InHand(main, redis_id)
        with self._lock:
            self._waiting.append(me)
            me.holds_lead = not self._leader
            self._leader = True
        try:
            if not me.holds_lead:
                me.ready.wait()
                if me.leads:  # handed the lead by the previous step's leader
                    me.ready.clear()
                    me.holds_lead, me.leads = True, False
            if me.holds_lead:
                self._lead(me)
        except BaseException:
            # An exception raised into this thread (Dramatiq's time limit, shutdown) while it
            # waited or led: it must neither stay in line nor keep the lead from the others.
            with self._lock:
                if me in self._waiting:
                    self._waiting.remove(me)
                if me.holds_lead or me.leads:  # leading, or handed the lead just now
                    me.leads = False
                    self._pass_lead(me)
            raise
        if me.error is not None:
            raise me.error
        if me.alone:
            return self._alone(main)
        assert me.result is not None
        return me.result

    def _alone(self, main: Batch) -> StepResult:
        applied = self._retrying(apply_batches)(self._ctx, [main], self._clock_us())
        return StepResult(applied, [main], [])

    def _pass_lead(self, me: _InHand) -> None:
        """(Under the lock.) The first message waiting leads the next step, or nobody leads."""
        me.holds_lead = False
        if self._waiting:  # arrived during the step: the first of them leads the next
            self._waiting[0].leads = True
            self._waiting[0].ready.set()
        else:
            self._leader = False

    def _lead(self, me: _InHand) -> None:
        group: list[_InHand] = []
        try:
            if self._linger_s > 0:
                self._sleep(self._linger_s)  # let the messages arriving meanwhile join
            with self._lock:
                group, self._waiting = self._waiting, []
            self._step(group, me)
        except BaseException as exc:  # nobody of the group may wait forever
            with self._lock:  # (raised while lingering: still in line, and must not lead next)
                if me in self._waiting:
                    self._waiting.remove(me)
            for held in group:
                if held is not me and not held.ready.is_set():
                    held.settle(error=exc)
            raise
        finally:
            with self._lock:
                self._pass_lead(me)

    def _step(self, group: list[_InHand], me: _InHand) -> None:
        """Apply `group` and the queued messages behind it; settle every member."""
        worker_id = getattr(self._broker, "broker_id", None)
        ids = [held.redis_id for held in group if held.redis_id]
        solo: frozenset[str] = frozenset()
        taken: list[Taken] = []
        if worker_id:
            solo, taken = self._take(worker_id, ids)
        shared = [held for held in group if held.redis_id not in solo]
        for held in group:
            if held.redis_id in solo:
                held.settle(alone=True)  # it failed in a shared step before
        if not shared:
            return
        batches = [held.batch for held in shared] + [t.batch for t in taken]
        claimed = [t.claimed.redis_id for t in taken]
        if len(batches) == 1:
            shared[0].settle(alone=True)  # nothing to share: as if never grouped
            return
        try:
            applied = self._retrying(apply_batches)(self._ctx, batches, self._clock_us())
        except SymbolsFailed:
            # Some message of the step is poison: the claimed ones go back to run alone, and
            # each thread applies its own alone, so its retries count only its own failures.
            self._settle(worker_id, claimed, release=True)
            log.warning("calc: shared step of %d messages failed; each runs alone", len(batches))
            for held in shared:
                held.settle(alone=True)
            return
        except BaseException:  # Redis gone for good, a time limit, shutdown: give them back
            self._settle(worker_id, claimed, release=True)
            raise
        self._settle(worker_id, claimed, release=False)
        others = [t.trace_ids for t in taken]
        for held in shared:
            if held is me:
                rest = [h.batch for h in shared if h is not me] + [t.batch for t in taken]
                traces = [tid for ids_ in others for tid in ids_]
                held.settle(result=StepResult(applied, [held.batch, *rest], traces))
            else:
                held.settle(result=StepResult(applied, [held.batch], []))

    def _take(self, worker_id: str, main_ids: list[str]) -> tuple[frozenset[str], list[Taken]]:
        try:
            claim = self._claims.take(worker_id, main_ids, self._clock_us() // 1_000)
        except RedisError:
            self._lost_claims("claim")  # a lost reply may have claimed some
            return frozenset(), []
        taken: list[Taken] = []
        foreign: list[str] = []
        for claimed in claim.messages:
            decoded = _decode(claimed)
            if decoded is None:
                foreign.append(claimed.redis_id)
            else:
                taken.append(decoded)
        if foreign:  # not a calc message we can read: let Dramatiq's fetch have it, alone
            self._settle(worker_id, foreign, release=True)
        return claim.solo, taken

    def _settle(self, worker_id: str | None, redis_ids: list[str], *, release: bool) -> None:
        if not worker_id or not redis_ids:
            return
        try:
            if release:
                self._claims.release(worker_id, redis_ids)
            else:
                self._claims.ack(worker_id, redis_ids)
        except RedisError:
            # Unsettled claims sit in our ack set: under a fresh id they come back by maintenance
            # (already applied ones are then skipped by their done-markers).
            self._lost_claims("release" if release else "ack")

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
