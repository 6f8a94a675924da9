"""The crossing logic: which observations fire which rules, once per crossing.

Pure: the rules, the per-symbol memory and the observations come in, the new memory and the
firings go out; event time is the observations' own. The evaluator actor loads the memory from
Redis, calls `evaluate`, and commits the memory, the cursor and the firings in one transaction,
so a redelivered message finds the memory already moved and fires nothing twice.

Every rule of one symbol and field sees the same sequence of observed values, so the previous
value is kept once per field (`SymbolMemory.prev`), not per rule. A rule's condition can only
change between two observations if one of its thresholds lies between the two values; the
`RuleIndex` keeps each field's thresholds sorted, so an observation costs a bisection plus the
rules it actually concerns, however many rules do not fire. A rule evaluated for the first time
(`fresh`) is checked on its own, so a level rule created while its condition already holds fires.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import Field

from backend.core.alerts.firing import Firing, FiringTick, firing_id
from backend.core.alerts.rules import (
    BAR_SECONDS,
    CHANNEL_CONDITIONS,
    AlertRule,
)
from backend.core.contract import Contract
from backend.core.ticks import us_to_iso

ObservationKind = Literal["tick", "view"]
TICK_FIELDS = frozenset({"last_price"})  # evaluated on every tick that becomes the latest


class Observation(Contract):
    """What calc committed for a symbol, in commit order: each tick that became the latest
    (`tick`: values = {"last_price": price}), or a committed view (`view`: W's numeric fields,
    `stale` and `gap_opened` as 1/0)."""

    kind: ObservationKind
    ts_us: int
    event_id: str
    values: dict[str, float]
    price: float | None = None
    volume: float | None = None
    source: str | None = None

    def applies_to(self, field_name: str) -> bool:
        return (field_name in TICK_FIELDS) == (self.kind == "tick")


class RuleState(Contract):
    """A rule's own memory: what the trigger mode needs to hold back a repeat."""

    seen: bool = Field(default=False, description="Evaluated at least once (not fresh)")
    last_fired_us: int | None = None
    last_bar: int | None = None  # the bar bucket (epoch s // bar) of the last firing
    done: bool = False  # trigger `once`: fired, never again


@dataclass
class SymbolMemory:
    """Per symbol: the last observed value of each field, and each rule's state."""

    prev: dict[str, float] = field(default_factory=dict)
    rules: dict[str, RuleState] = field(default_factory=dict)


def _inside(rule: AlertRule, value: float) -> bool:
    low, high = rule.threshold, float(rule.value2 if rule.value2 is not None else rule.threshold)
    return low <= value <= high


def condition_met(rule: AlertRule, prev: float | None, value: float) -> bool:
    """Whether moving from `prev` (None: nothing seen before) to `value` fires `rule`'s
    condition, before the trigger mode has its say."""
    threshold = rule.threshold
    match rule.condition:
        case "above":  # level: fires when it becomes true
            return value > threshold and not (prev is not None and prev > threshold)
        case "below":
            return value < threshold and not (prev is not None and prev < threshold)
        case "crosses_above":
            return prev is not None and prev <= threshold < value
        case "crosses_below":
            return prev is not None and prev >= threshold > value
        case "crosses":
            return prev is not None and (prev <= threshold < value or prev >= threshold > value)
        case "enters_channel":
            return prev is not None and not _inside(rule, prev) and _inside(rule, value)
        case "exits_channel":
            return prev is not None and _inside(rule, prev) and not _inside(rule, value)
    return False


def trigger_allows(rule: AlertRule, state: RuleState, ts_us: int) -> bool:
    """The trigger mode and cooldown, on event time (so a replay decides exactly as live did)."""
    if state.done:
        return False
    cooling = state.last_fired_us is not None and rule.cooldown_s > 0
    if cooling and ts_us - (state.last_fired_us or 0) < rule.cooldown_s * 1_000_000:
        return False
    if rule.trigger == "once_per_bar":
        return state.last_bar != _bar(rule, ts_us)
    return True


def _bar(rule: AlertRule, ts_us: int) -> int:
    return (ts_us // 1_000_000) // BAR_SECONDS[rule.bar]


def is_live(rule: AlertRule, now: datetime) -> bool:
    """Enabled and not expired at `now` (wall time: an expired rule never fires again)."""
    return rule.enabled and (rule.expires_at is None or rule.expires_at > now)


class RuleIndex:
    """A symbol's rules, with each field's thresholds sorted for range lookups."""

    def __init__(self, rules: Iterable[AlertRule], version: int = 0) -> None:
        self.version = version  # the rules mirror's version these rules were read at
        self.by_id: dict[str, AlertRule] = {}
        points: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for rule in rules:
            self.by_id[rule.id] = rule
            points[rule.field].append((rule.threshold, rule.id))
            if rule.condition in CHANNEL_CONDITIONS and rule.value2 is not None:
                points[rule.field].append((float(rule.value2), rule.id))
        self._thresholds: dict[str, list[float]] = {}
        self._ids: dict[str, list[str]] = {}
        for name, pairs in points.items():
            pairs.sort()
            self._thresholds[name] = [t for t, _ in pairs]
            self._ids[name] = [rule_id for _, rule_id in pairs]

    def __len__(self) -> int:
        return len(self.by_id)

    def between(self, field_name: str, a: float, b: float) -> set[str]:
        """Ids of the rules on `field_name` with a threshold in [min(a, b), max(a, b)]."""
        thresholds = self._thresholds.get(field_name)
        if not thresholds:
            return set()
        low, high = (a, b) if a <= b else (b, a)
        ids = self._ids[field_name]
        return set(ids[bisect_left(thresholds, low) : bisect_right(thresholds, high)])


@dataclass
class Evaluation:
    memory: SymbolMemory
    firings: list[Firing]
    changed_rules: set[str]  # rule ids whose state must be written back
    checked: int  # rules whose condition was computed (the cost that must not grow)


def evaluate(
    index: RuleIndex,
    memory: SymbolMemory,
    observations: Sequence[Observation],
    now: datetime,
    symbol: str,
) -> Evaluation:
    """Run `observations` (in commit order) through `index`'s rules, from `memory`."""
    # Only what this call touches is copied or scanned: the memory's rule states are read through
    # and the changed ones laid over them at the end, so a call costs the rules it concerns, not
    # every rule of the symbol.
    prev = dict(memory.prev)
    known = memory.rules
    updates: dict[str, RuleState] = {}
    firings: list[Firing] = []
    checked = 0
    # Rules never evaluated yet are checked on their own once; every other rule only when one of
    # its thresholds lies between two successive values. All seen ⇔ a state for every rule (the
    # memory keeps no state for a rule that is gone), so the scan only runs after a rule change.
    fresh: dict[str, set[str]] = defaultdict(set)
    if len(known) != len(index.by_id):
        for rule_id, rule in index.by_id.items():
            if rule_id not in known:
                fresh[rule.field].add(rule_id)
    for obs in observations:
        for field_name, value in obs.values.items():
            if not obs.applies_to(field_name):
                continue
            before = prev.get(field_name)
            candidates = index.between(field_name, before, value) if before is not None else set()
            for rule_id in sorted(candidates | fresh.pop(field_name, set())):
                rule = index.by_id[rule_id]
                state = updates.get(rule_id) or known.get(rule_id) or RuleState()
                checked += 1
                is_fresh = not state.seen
                if is_fresh:
                    state = state.model_copy(update={"seen": True})
                    updates[rule_id] = state
                met = condition_met(rule, None if is_fresh else before, value)
                if met and is_live(rule, now) and trigger_allows(rule, state, obs.ts_us):
                    firings.append(make_firing(rule, obs, value, symbol))
                    updates[rule_id] = fired(rule, state, obs.ts_us)
            prev[field_name] = value
    states = {**known, **updates} if updates else known
    if len(states) > len(index.by_id):  # rules deleted since: forget them
        states = {rule_id: s for rule_id, s in states.items() if rule_id in index.by_id}
    return Evaluation(SymbolMemory(prev, states), firings, set(updates), checked)


def fired(rule: AlertRule, state: RuleState, ts_us: int) -> RuleState:
    """`state` after `rule` fired at event time `ts_us`."""
    return state.model_copy(
        update={
            "last_fired_us": ts_us,
            "last_bar": _bar(rule, ts_us),
            "done": rule.trigger == "once",
        }
    )


def make_firing(rule: AlertRule, obs: Observation, observed: float, symbol: str) -> Firing:
    """The firing of `rule` on `obs` (its id is stable: see `firing_id`)."""
    key = f"{obs.kind}:{obs.ts_us}:{obs.event_id}"
    return Firing(
        alert_id=firing_id(rule.id, key),
        rule_id=rule.id,
        rule_version=rule.version,
        rule_name=rule.name,
        symbol=symbol,
        field=rule.field,
        condition=rule.condition,
        value=rule.value,
        value2=rule.value2,
        observed=observed,
        tick=FiringTick(
            ts=us_to_iso(obs.ts_us),
            event_id=obs.event_id,
            price=obs.price,
            volume=obs.volume,
            source=obs.source,
        ),
        firing_key=key,
        fired_at=us_to_iso(obs.ts_us),
    )
