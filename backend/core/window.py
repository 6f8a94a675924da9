"""Per-symbol rolling window state: the part of calc that must survive any worker's death.

The ticks inside the 60 s window behind the latest tick live in a `WindowStore` (a Redis sorted
set in production, a sorted list in tests); the small state beside it keeps the 10 latest ticks,
totals, sequence tracking and the window's aggregates. Volume and notional are EXACT decimal sums
(each float's shortest decimal), so adding new ticks and subtracting evicted ones in any order
gives identical numbers; high/low are recomputed from the store only when an evicted tick held
them. A batch costs O(batch + evicted), not O(window).

Why any order gives the same state: a tick leaves the window only when the latest time moves
past it, and the latest time only grows, so a tick once out of the window (or of the 10 latest)
can never qualify again. The store therefore always holds exactly {t : t.ts > last.ts − 60 s}.
"""

from __future__ import annotations

import decimal
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import orjson

from backend.core.gaps import GapChange, SeqTrack, track
from backend.core.ticks import Tick

WINDOW_US = 60 * 1_000_000
LAST_N = 10

# A window entry: (ts_us, event_id, price, volume, source). Ordered by (ts_us, event_id).
Entry = tuple[int, str, float, float, str]

_EXACT = decimal.Context(
    prec=200, traps=[decimal.Inexact, decimal.Overflow, decimal.InvalidOperation]
)


def exact(value: float) -> Decimal:
    return Decimal(repr(value))


def key(entry: Entry) -> tuple[int, str]:
    return (entry[0], entry[1])


class WindowStore(Protocol):
    """Read side of the window's ticks; every method sees the store BEFORE this batch."""

    def upto(self, cutoff_us: int) -> list[Entry]:
        """Entries with ts <= cutoff (the ones a new cutoff evicts)."""

    def first_after(self, cutoff_us: int) -> Entry | None:
        """The earliest entry (by ts, event_id) with ts > cutoff."""

    def extremes_without(self, evicted: list[Entry]) -> tuple[float | None, float | None]:
        """Highest and lowest price of the entries held, leaving out `evicted` (which are all
        held). Only asked when an evicted tick carried the window's high or low: a store keeps
        its entries indexed by price as well, so this costs O(log n + evicted), not O(window)."""


@dataclass(frozen=True, slots=True)
class WindowDelta:
    """What the store must do to follow the new state: add entries, drop ts <= cutoff
    (`evict` lists the entries that drops, for a store that indexes them another way too)."""

    add: list[Entry] = field(default_factory=list)
    cutoff_us: int | None = None
    evict: list[Entry] = field(default_factory=list)


@dataclass(slots=True)
class WindowAgg:
    count: int = 0
    volume: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    high: float | None = None
    low: float | None = None
    first: Entry | None = None  # earliest tick in the window: open_1m

    def to_json(self) -> list[Any]:
        return [self.count, str(self.volume), str(self.notional), self.high, self.low, self.first]

    @classmethod
    def from_json(cls, raw: list[Any]) -> WindowAgg:
        count, volume, notional, high, low, first = raw
        return cls(
            count, Decimal(volume), Decimal(notional), high, low, _entry(first) if first else None
        )


def _entry(raw: list[Any]) -> Entry:
    return (int(raw[0]), raw[1], float(raw[2]), float(raw[3]), raw[4])


@dataclass(slots=True)
class WindowState:
    """Per-symbol calc state as kept in Redis between batches (calc-a's output)."""

    symbol: str
    latest: list[Entry] = field(default_factory=list)  # up to LAST_N, ascending
    window: WindowAgg = field(default_factory=WindowAgg)
    ticks_total: int = 0
    last_received_us: int = 0  # latest arrival: a function of the set (first write wins)
    seqs: dict[str, SeqTrack] = field(default_factory=dict)  # by source
    version: int = 0  # bumped on every change
    # Ticks a rebuild already counted while their calc message was still queued: calc drops
    # them when that message comes (`backend.core.rebuild.drop_skipped`). Usually empty.
    skip: frozenset[str] = frozenset()

    @property
    def last(self) -> Entry | None:
        return self.latest[-1] if self.latest else None

    @property
    def cutoff_us(self) -> int | None:
        """Ticks at or before this time are outside the window."""
        return self.latest[-1][0] - WINDOW_US if self.latest else None

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "symbol": self.symbol,
            "ticks_total": self.ticks_total,
            "last_received_us": self.last_received_us,
            "version": self.version,
            "latest": self.latest,
            "window": self.window.to_json(),
            "seqs": {source: t.to_json() for source, t in self.seqs.items()},
        }
        if self.skip:  # absent when empty: the usual state keeps its bytes
            data["skip"] = sorted(self.skip)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str | None, symbol: str) -> WindowState:
        if not raw:
            return cls(symbol=symbol)
        data: dict[str, Any] = orjson.loads(raw)
        return cls(
            symbol=symbol,
            latest=[_entry(e) for e in data["latest"]],
            window=WindowAgg.from_json(data["window"]),
            ticks_total=int(data["ticks_total"]),
            last_received_us=int(data.get("last_received_us", 0)),
            seqs={s: SeqTrack.from_json(s, t) for s, t in data.get("seqs", {}).items()},
            version=int(data.get("version", 0)),
            skip=frozenset(data.get("skip", ())),
        )


@dataclass(frozen=True, slots=True)
class MergeStats:
    """Order-dependent facts about one merge, for metrics only (never for views)."""

    late: int = 0  # ticks older than the latest tick already held
    gaps: GapChange = field(default_factory=GapChange)


def to_entry(tick: Tick) -> Entry:
    return (tick.ts_us, tick.event_id, tick.price, tick.volume, tick.source)


def merge(
    state: WindowState, store: WindowStore, ticks: Iterable[Tick], now_us: int = 0
) -> tuple[WindowState, WindowDelta, MergeStats]:
    """Merge `ticks` (all of `state.symbol`, each merged at most once overall) into the state.

    The caller guarantees once-only (ingest de-duplicates; a redelivered batch is recognised by
    its message id), which keeps `ticks_total` and the exact sums right. `now_us` only stamps
    when a sequence gap was first seen.
    """
    fresh: dict[str, Tick] = {}
    for tick in ticks:
        if tick.symbol != state.symbol:
            raise ValueError(f"tick {tick.event_id} is for {tick.symbol}, not {state.symbol}")
        fresh.setdefault(tick.event_id, tick)
    if not fresh:
        return state, WindowDelta(), MergeStats()
    new_entries = sorted(map(to_entry, fresh.values()), key=key)
    last = state.last
    late = sum(1 for e in new_entries if last is not None and key(e) < key(last))
    latest = heapq.nlargest(LAST_N, [*state.latest, *new_entries], key=key)[::-1]
    cutoff = latest[-1][0] - WINDOW_US
    old_cutoff = state.cutoff_us
    added = [e for e in new_entries if e[0] > cutoff]
    evicted = store.upto(cutoff) if old_cutoff is not None and cutoff > old_cutoff else []
    window = _advance(state.window, store, cutoff, added, evicted)

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
        latest=latest,
        window=window,
        ticks_total=state.ticks_total + len(fresh),
        last_received_us=max(state.last_received_us, *(t.received_us for t in fresh.values())),
        seqs=seqs,
        version=state.version + 1,
        skip=state.skip,
    )
    return (
        new_state,
        WindowDelta(add=added, cutoff_us=cutoff, evict=evicted),
        MergeStats(late, GapChange(opened, closed)),
    )


def _advance(
    agg: WindowAgg, store: WindowStore, cutoff: int, added: list[Entry], evicted: list[Entry]
) -> WindowAgg:
    volume = agg.volume
    notional = agg.notional
    for e in evicted:
        v = exact(e[3])
        volume = _EXACT.subtract(volume, v)
        notional = _EXACT.subtract(notional, _EXACT.multiply(exact(e[2]), v))
    for e in added:
        v = exact(e[3])
        volume = _EXACT.add(volume, v)
        notional = _EXACT.add(notional, _EXACT.multiply(exact(e[2]), v))
    count = agg.count - len(evicted) + len(added)
    evicted_prices = {e[2] for e in evicted}
    if agg.high in evicted_prices or agg.low in evicted_prices:
        kept = [p for p in store.extremes_without(evicted) if p is not None]
    else:
        kept = [p for p in (agg.high, agg.low) if p is not None]
    prices = [e[2] for e in added] + kept
    high, low = (max(prices), min(prices)) if prices else (None, None)
    first = (
        agg.first if agg.first is not None and agg.first[0] > cutoff else store.first_after(cutoff)
    )
    if added and (first is None or key(added[0]) < key(first)):
        first = added[0]
    if count == 0:
        volume, notional, high, low, first = Decimal(0), Decimal(0), None, None, None
    return WindowAgg(count, volume, notional, high, low, first)


class ListStore:
    """An in-memory WindowStore (tests, and reference for the Redis one)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def upto(self, cutoff_us: int) -> list[Entry]:
        return [e for e in self.entries if e[0] <= cutoff_us]

    def first_after(self, cutoff_us: int) -> Entry | None:
        return next((e for e in self.entries if e[0] > cutoff_us), None)

    def extremes_without(self, evicted: list[Entry]) -> tuple[float | None, float | None]:
        gone = {e[1] for e in evicted}
        prices = [e[2] for e in self.entries if e[1] not in gone]
        return (max(prices), min(prices)) if prices else (None, None)

    def apply(self, delta: WindowDelta) -> None:
        held = {e[1] for e in self.entries}
        entries = [*self.entries, *(e for e in delta.add if e[1] not in held)]
        if delta.cutoff_us is not None:
            entries = [e for e in entries if e[0] > delta.cutoff_us]
        self.entries = sorted(entries, key=key)
