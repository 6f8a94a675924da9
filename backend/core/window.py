"""Per-symbol rolling window state: the part of calc that must survive any worker's death.

The state holds exactly the ticks that can still influence the view: those inside the 60 s window
behind the latest tick, plus the `LAST_N` latest. A tick outside both can never re-enter either
(the latest time only grows and the top-N only gets more exclusive), so trimming is safe and the
state after merging a set of ticks is the same whatever the order or batching of the merges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from backend.core.gaps import GapChange, SeqTrack, track
from backend.core.ticks import Tick

WINDOW_US = 60 * 1_000_000
LAST_N = 10

# A stored window entry: (ts_us, event_id, price, volume, source). Sorted by (ts_us, event_id).
Entry = tuple[int, str, float, float, str]


@dataclass(slots=True)
class WindowState:
    """Per-symbol calc state as kept in Redis between batches (calc-a's output)."""

    symbol: str
    entries: list[Entry] = field(default_factory=list)
    ticks_total: int = 0
    last_received_us: int = 0  # latest arrival: a function of the set (first write wins)
    seqs: dict[str, SeqTrack] = field(default_factory=dict)  # by source
    version: int = 0  # bumped on every change; lets calc-b ignore stale states

    @property
    def last(self) -> Entry | None:
        return self.entries[-1] if self.entries else None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "symbol": self.symbol,
                "ticks_total": self.ticks_total,
                "last_received_us": self.last_received_us,
                "version": self.version,
                "entries": self.entries,
                "seqs": {source: t.to_json() for source, t in self.seqs.items()},
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str | None, symbol: str) -> WindowState:
        if not raw:
            return cls(symbol=symbol)
        data: dict[str, Any] = orjson.loads(raw)
        entries = [(int(e[0]), e[1], float(e[2]), float(e[3]), e[4]) for e in data["entries"]]
        return cls(
            symbol=symbol,
            entries=entries,
            ticks_total=int(data["ticks_total"]),
            last_received_us=int(data.get("last_received_us", 0)),
            seqs={s: SeqTrack.from_json(s, t) for s, t in data.get("seqs", {}).items()},
            version=int(data.get("version", 0)),
        )


@dataclass(frozen=True, slots=True)
class MergeStats:
    """Order-dependent facts about one merge, for metrics only (never for views)."""

    late: int = 0  # ticks older than the latest tick already held
    gaps: GapChange = field(default_factory=GapChange)


def to_entry(tick: Tick) -> Entry:
    return (tick.ts_us, tick.event_id, tick.price, tick.volume, tick.source)


def merge(
    state: WindowState, ticks: Iterable[Tick], now_us: int = 0
) -> tuple[WindowState, MergeStats]:
    """A new state with `ticks` (all of `state.symbol`) merged in and the dead ones trimmed.

    `ticks_total` counts event_ids not already held. The caller guarantees a tick is merged at
    most once overall (ingest de-duplicates; a redelivered batch is detected by its message id),
    which is what keeps the total exact for ticks that were already trimmed. `now_us` only
    stamps when a sequence gap was first seen.
    """
    held = {entry[1] for entry in state.entries}
    fresh: dict[str, Tick] = {}
    for tick in ticks:
        if tick.symbol != state.symbol:
            raise ValueError(f"tick {tick.event_id} is for {tick.symbol}, not {state.symbol}")
        if tick.event_id not in held:
            fresh.setdefault(tick.event_id, tick)
    if not fresh:
        return state, MergeStats()
    last = state.last
    late = sum(1 for t in fresh.values() if last is not None and (t.ts_us, t.event_id) < last[:2])
    entries = sorted([*state.entries, *map(to_entry, fresh.values())], key=lambda e: (e[0], e[1]))
    seqs, opened, closed = dict(state.seqs), 0, 0
    by_source: dict[str, list[int]] = {}
    for t in fresh.values():
        if t.seq is not None:
            by_source.setdefault(t.source, []).append(t.seq)
    for source, new_seqs in by_source.items():
        seqs[source], change = track(seqs.get(source) or SeqTrack(source), sorted(new_seqs), now_us)
        opened, closed = opened + change.opened, closed + change.closed
    new_state = WindowState(
        symbol=state.symbol,
        entries=trim(entries),
        ticks_total=state.ticks_total + len(fresh),
        last_received_us=max(state.last_received_us, *(t.received_us for t in fresh.values())),
        seqs=seqs,
        version=state.version + 1,
    )
    return new_state, MergeStats(late=late, gaps=GapChange(opened, closed))


def trim(entries: list[Entry]) -> list[Entry]:
    """Keep the entries inside (last - 60 s, last] and the LAST_N latest; input sorted."""
    if not entries:
        return entries
    cutoff = entries[-1][0] - WINDOW_US
    keep_from = len(entries) - LAST_N
    first = 0
    while first < keep_from and entries[first][0] <= cutoff:
        first += 1
    return entries[first:]
