"""Alert evaluation's Redis: a symbol's observation stream, its memory, and the firings, moved
together in one optimistic transaction.

Per symbol: WATCH the memory key, read the memory (the stream cursor, each field's previous value,
each rule's state) and the stream entries after the cursor, evaluate (pure, `backend.core.alerts`),
then MULTI: the new memory, the trim of what was read, every firing's history record, event and
webhook jobs, the counters; EXEC. Two workers on one symbol, or a redelivered message, collide on
the memory key: the loser's EXEC aborts and it starts again from the winner's memory, so no
observation is evaluated twice and no crossing fires twice. A worker killed before EXEC left
nothing behind; the next message (or the redelivery) evaluates the same observations again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError
from redis import Redis, WatchError
from redis.client import Pipeline

from backend.bus import stats
from backend.bus.alert_firings import queue_firing
from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.core.alerts.conditions import Observation, RuleIndex, evaluate
from backend.core.alerts.firing import Firing
from backend.core.alerts.observations import StoredMemory, decode_observations
from backend.core.alerts.rules import AlertRule

log = logging.getLogger(__name__)

BATCH = 100  # stream entries (calc commits) per transaction: bounds one EXEC and a retry's waste
ALERTS_OBSERVATIONS = "alerts_observations"
ALERTS_RULES_CHECKED = "alerts_rules_checked"
ALERTS_EVALUATIONS = "alerts_evaluations"
ALERTS_EVALUATION_CONFLICTS = "alerts_evaluation_conflicts"
ALERTS_BAD_OBSERVATIONS = "alerts_bad_observations"

ClockUs = Callable[[], int]  # wall-clock time in epoch µs


class StaleRules(Exception):
    """The symbol's memory was written with newer rules than the caller's: reload, then retry."""


@dataclass(frozen=True)
class Step:
    """What one committed transaction did."""

    entries: int  # stream entries read (undecodable ones included)
    firings: int
    drained: bool  # fewer than a batch were left: the stream is caught up


def _next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (XTRIM MINID keeps ids >= it)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


FiringSink = Callable[[Pipeline, Keys, Ring, AlertRule, Firing, int], None]


def record_sandbox_firing(
    pipe: Pipeline, keys: Keys, _ring: Ring, _rule: AlertRule, firing: Firing, _now_us: int
) -> None:
    """A sandbox's firing: appended to its would-have-fired list, and nothing else: no history
    row, no event, no webhook job. A backtest can never deliver."""
    pipe.rpush(keys.sandbox_firings, firing.model_dump_json())


class AlertEvaluationStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        ring: Ring,
        batch: int = BATCH,
        on_firing: FiringSink = queue_firing,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._ring = ring
        self._batch = batch
        self._on_firing = on_firing  # live: history, event and webhook jobs (`queue_firing`)

    def read_memory(self, symbol: str) -> StoredMemory:
        """The symbol's stored memory (tests, diagnostics)."""
        return StoredMemory.from_json(self._redis.get(self._keys.alert_memory(symbol)))

    def step(self, symbol: str, index: RuleIndex, clock_us: ClockUs) -> Step:
        """One transaction over the next observations of `symbol`; retried on a collision."""
        memory_key = self._keys.alert_memory(symbol)
        stream = self._keys.alert_observations(symbol)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    return self._attempt(pipe, symbol, memory_key, stream, index, clock_us)
                except WatchError:
                    log.debug("alerts: concurrent evaluation of %s, retrying", symbol)
                    self._redis.hincrby(self._keys.stats, ALERTS_EVALUATION_CONFLICTS, 1)

    def _attempt(
        self,
        pipe: Pipeline,
        symbol: str,
        memory_key: str,
        stream: str,
        index: RuleIndex,
        clock_us: ClockUs,
    ) -> Step:
        pipe.watch(memory_key)
        stored = StoredMemory.from_json(pipe.get(memory_key))
        if stored.newer_rules_than(index):
            pipe.unwatch()
            raise StaleRules(symbol)
        entries = pipe.xrange(stream, min=f"({stored.cursor}", count=self._batch)
        if not entries:
            pipe.unwatch()
            return Step(entries=0, firings=0, drained=True)
        observations: list[Observation] = []
        bad = 0
        for entry_id, fields in entries:
            try:
                observations += decode_observations(fields[b"o"])
            except (KeyError, ValueError, ValidationError) as exc:
                # A poison entry must not wedge the symbol: skipped, logged, counted.
                bad += 1
                log.error(
                    "alerts: undecodable observation %s of %s skipped: %r", entry_id, symbol, exc
                )
        at_us = clock_us()  # `now` for expiry, and the firings' commit stamp
        now = datetime.fromtimestamp(at_us / 1_000_000, UTC)
        evaluation = evaluate(index, stored.for_rules(index), observations, now, symbol)
        cursor = entries[-1][0].decode()
        pipe.multi()
        pipe.set(memory_key, StoredMemory.after(cursor, evaluation.memory, index).to_json())
        pipe.xtrim(stream, minid=_next_id(cursor))
        for firing in evaluation.firings:
            rule = index.by_id.get(firing.rule_id)
            if rule is not None:
                self._on_firing(pipe, self._keys, self._ring, rule, firing, at_us)
        stats.add_counters(
            pipe,
            self._keys.stats,
            {
                ALERTS_EVALUATIONS: 1,
                ALERTS_OBSERVATIONS: len(observations),
                ALERTS_RULES_CHECKED: evaluation.checked,
                ALERTS_BAD_OBSERVATIONS: bad,
            },
        )
        pipe.execute()
        return Step(len(entries), len(evaluation.firings), drained=len(entries) < self._batch)

    def drain(
        self,
        symbol: str,
        index: RuleIndex,
        clock_us: ClockUs,
        reload: Callable[[], RuleIndex] | None = None,
    ) -> int:
        """Evaluate every observation of `symbol` there is; the number of firings.

        When the memory was written with newer rules than `index` (another worker's cache
        refreshed first), `reload()` gives fresh rules and the step is retried, so no evaluation
        judges a symbol by older rules than the last one did; without `reload`, StaleRules.
        """
        fired = 0
        while True:
            try:
                step = self.step(symbol, index, clock_us)
            except StaleRules:
                if reload is None:
                    raise
                index = reload()
                continue
            fired += step.firings
            if step.drained:
                return fired
