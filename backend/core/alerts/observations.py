"""What calc hands to alert evaluation: the observations one committed merge produced, and the
per-symbol evaluation memory as it is stored between evaluations.

Pure. calc calls `tick_observations` with the state's latest tick *before* the merge and the
entries the merge added, and `view_observation` with the view it writes; the evaluation store
round-trips `StoredMemory` through JSON. Keeping the extraction here (not in the actor) lets the
rule "a tick fires a `last_price` rule only if it became the latest" be tested without Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from pydantic import TypeAdapter

from backend.core.alerts.conditions import Observation, RuleIndex, RuleState, SymbolMemory
from backend.core.view import View
from backend.core.window import Entry, key

# W's numeric fields a view observation carries (`last_price` is observed per tick instead).
VIEW_FIELDS = (
    "change_1m_pct", "vwap_1m", "volume_1m", "trades_1m", "sma_10", "high_1m", "low_1m",
    "gaps_open",
)  # fmt: skip
STREAM_START = "0-0"  # a cursor before every stream id


def tick_observations(prior_latest: Entry | None, added: Iterable[Entry]) -> list[Observation]:
    """One `tick` observation per entry of `added` (what the merge put into the window) that
    comes strictly after `prior_latest` (the state's latest before the merge), in (ts, event_id)
    order, once per event_id.

    Ticks the merge sorted in front of the latest are late: the symbol's latest never was that
    price, so they never fire a `last_price` rule. Ticks after the prior latest each became the
    latest in turn, so a spike that crosses and returns inside one batch is seen.
    """
    seen: set[str] = set()
    out: list[Observation] = []
    for entry in sorted(added, key=key):
        if entry[1] in seen or (prior_latest is not None and key(entry) <= key(prior_latest)):
            continue
        seen.add(entry[1])
        ts_us, event_id, price, volume, source = entry
        obs = Observation(
            kind="tick", ts_us=ts_us, event_id=event_id, values={"last_price": price},
            price=price, volume=volume, source=source,
        )  # fmt: skip
        out.append(obs)
    return out


def view_observation(view: View, *, ts_us: int, gap_opened: bool) -> Observation:
    """The `view` observation of a committed W: its numeric fields (a null `vwap_1m` is left
    out: no volume, nothing to compare), `stale` and `gap_opened` as 1/0, stamped with the
    view's latest tick (`ts_us`, the view's `last_event_id`)."""
    values: dict[str, float] = {}
    for name in VIEW_FIELDS:
        value = getattr(view, name)
        if value is not None:
            values[name] = float(value)
    values["stale"] = 1.0 if view.stale else 0.0
    values["gap_opened"] = 1.0 if gap_opened else 0.0
    last = view.last_10[0] if view.last_10 else None
    return Observation(
        kind="view",
        ts_us=ts_us,
        event_id=view.last_event_id,
        values=values,
        price=view.last_price,
        volume=last.volume if last is not None else None,
        source=view.last_source,
    )


@dataclass
class StoredMemory:
    """A symbol's evaluation memory as Redis keeps it: how far the observation stream has been
    evaluated (`cursor`, a stream id), the crossing memory it led to, and the version of each
    rule its state was kept for (`versions`)."""

    cursor: str = STREAM_START
    memory: SymbolMemory = field(default_factory=SymbolMemory)
    versions: dict[str, int] = field(default_factory=dict)
    # The rules mirror's version the last evaluation read its rules at. A worker whose cached
    # rules are older must reload before evaluating: judged by older rules than the memory's,
    # an edited rule would look edited back and start afresh (and fire again).
    rules_version: int = 0

    def newer_rules_than(self, index: RuleIndex) -> bool:
        return self.rules_version > index.version

    def for_rules(self, index: RuleIndex) -> SymbolMemory:
        """The memory to evaluate `index` from: a rule whose version moved since its state was
        kept (edited, paused, resumed) starts afresh, so a `once` rule re-enabled after firing
        can fire again and an edited threshold is not judged by the old one's history."""
        kept = {
            rule_id: state
            for rule_id, state in self.memory.rules.items()
            if rule_id in index.by_id and self.versions.get(rule_id) == index.by_id[rule_id].version
        }
        return SymbolMemory(dict(self.memory.prev), kept)

    @classmethod
    def after(cls, cursor: str, memory: SymbolMemory, index: RuleIndex) -> StoredMemory:
        """What to store after evaluating `index` up to `cursor`."""
        versions = {rule_id: index.by_id[rule_id].version for rule_id in memory.rules}
        return cls(cursor, memory, versions, index.version)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "cursor": self.cursor,
                "prev": self.memory.prev,
                "rules": {
                    rule_id: [int(s.seen), s.last_fired_us, s.last_bar, int(s.done)]
                    for rule_id, s in sorted(self.memory.rules.items())
                },
                "versions": dict(sorted(self.versions.items())),
                "rules_version": self.rules_version,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> StoredMemory:
        """The stored memory; an absent key is a symbol never evaluated (start of the stream)."""
        if not raw:
            return cls()
        data: dict[str, Any] = orjson.loads(raw)
        return cls(
            cursor=str(data.get("cursor") or STREAM_START),
            memory=SymbolMemory(
                prev={name: float(v) for name, v in (data.get("prev") or {}).items()},
                rules={rule_id: _rule_state(s) for rule_id, s in (data.get("rules") or {}).items()},
            ),
            versions={rule_id: int(v) for rule_id, v in (data.get("versions") or {}).items()},
            rules_version=int(data.get("rules_version") or 0),
        )


def _rule_state(raw: list[Any] | dict[str, Any]) -> RuleState:
    """A rule's state from its compact stored form [seen, last_fired_us, last_bar, done].

    Compact and built without validation (the memory is our own write): the memory holds every
    rule of the symbol and is read and written on every evaluation, so its cost per rule must
    stay tiny however many rules never fire.
    """
    if isinstance(raw, dict):
        return RuleState.model_validate(raw)
    seen, last_fired_us, last_bar, done = raw
    return _state(bool(seen), last_fired_us, last_bar, bool(done))


@lru_cache(maxsize=4096)
def _state(seen: bool, last_fired_us: int | None, last_bar: int | None, done: bool) -> RuleState:
    """Shared instances (RuleState is frozen): most rules of a symbol hold the same state (seen,
    never fired), and building a model per rule per evaluation was most of its cost."""
    return RuleState.model_construct(
        seen=seen, last_fired_us=last_fired_us, last_bar=last_bar, done=done
    )


_OBSERVATIONS = TypeAdapter(list[Observation])


def encode_observations(observations: list[Observation]) -> bytes:
    """One stream entry's payload: what one calc transaction committed, as a JSON array (one
    entry per commit, not per observation: an XADD per tick cost calc more than the merge)."""
    return _OBSERVATIONS.dump_json(observations, exclude_none=True)


def decode_observations(raw: bytes | str) -> list[Observation]:
    return _OBSERVATIONS.validate_json(raw)
