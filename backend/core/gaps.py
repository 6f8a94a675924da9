"""Sequence-gap bookkeeping per (source, symbol).

The sequences seen are kept as a sorted list of disjoint inclusive intervals; the open gaps are
exactly the holes between them, so they are a pure function of the SET of sequences seen. A late
tick that fills part of a hole splits or shrinks it; filling all of it closes it. When a gap was
first seen (`detected_at`) and when it closed are wall-clock facts, kept as metadata beside the
order-independent part and excluded from the exactness guarantee.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from pydantic import Field

from backend.core.contract import Contract
from backend.core.ticks import us_to_iso
from backend.core.timestamps import IsoTime

MAX_CLOSED = 20  # recently closed gaps kept per (source, symbol)

Interval = tuple[int, int]  # inclusive


def add_seq(intervals: list[Interval], seq: int) -> list[Interval]:
    """`intervals` with `seq` added (merging neighbours); a new list, the input is unchanged."""
    out = list(intervals)
    i = bisect.bisect_right(out, (seq, float("inf")))  # first interval starting after seq
    if i > 0 and out[i - 1][1] >= seq:
        return out  # already seen
    joins_left = i > 0 and out[i - 1][1] == seq - 1
    joins_right = i < len(out) and out[i][0] == seq + 1
    if joins_left and joins_right:
        out[i - 1 : i + 1] = [(out[i - 1][0], out[i][1])]
    elif joins_left:
        out[i - 1] = (out[i - 1][0], seq)
    elif joins_right:
        out[i] = (seq, out[i][1])
    else:
        out.insert(i, (seq, seq))
    return out


def holes(intervals: list[Interval]) -> list[Interval]:
    return [(a[1] + 1, b[0] - 1) for a, b in pairwise(intervals)]


@dataclass(frozen=True, slots=True)
class Gap:
    source: str
    from_seq: int
    to_seq: int
    detected_at_us: int
    closed_at_us: int | None = None

    def to_record(self) -> GapRecord:
        """The gap as the API sends it."""
        return GapRecord.model_validate(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """`GapRecord`'s JSON shape."""
        return {
            "source": self.source,
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "missing": self.to_seq - self.from_seq + 1,
            "detected_at": us_to_iso(self.detected_at_us),
            "closed_at": us_to_iso(self.closed_at_us) if self.closed_at_us is not None else None,
        }


class GapRecord(Contract):
    """A sequence gap of one source: `from_seq..to_seq` (inclusive) never arrived (yet)."""

    source: str
    from_seq: int
    to_seq: int
    missing: int
    detected_at: IsoTime
    closed_at: IsoTime | None = Field(description="Null while the gap is open")


class GapsResponse(Contract):
    """`GET /symbols/{symbol}/gaps`: open gaps by (source, from_seq), closed newest first."""

    symbol: str
    open: list[GapRecord]
    closed: list[GapRecord]


@dataclass(slots=True)
class SeqTrack:
    """What one (source, symbol) has seen: intervals, open gaps, recently closed gaps."""

    source: str
    intervals: list[Interval] = field(default_factory=list)
    open: list[Gap] = field(default_factory=list)
    closed: list[Gap] = field(default_factory=list)

    def to_json(self) -> list[Any]:
        return [
            [list(iv) for iv in self.intervals],
            [[g.from_seq, g.to_seq, g.detected_at_us] for g in self.open],
            [[g.from_seq, g.to_seq, g.detected_at_us, g.closed_at_us] for g in self.closed],
        ]

    @classmethod
    def from_json(cls, source: str, raw: list[Any]) -> SeqTrack:
        intervals, open_, closed = raw
        return cls(
            source=source,
            intervals=[(a, b) for a, b in intervals],
            open=[Gap(source, a, b, d) for a, b, d in open_],
            closed=[Gap(source, a, b, d, c) for a, b, d, c in closed],
        )


@dataclass(frozen=True, slots=True)
class GapChange:
    opened: int = 0
    closed: int = 0


def track(state: SeqTrack, seqs: Iterable[int], now_us: int) -> tuple[SeqTrack, GapChange]:
    """Add `seqs`; reconcile gap records. A hole that is (part of) an old gap keeps its
    `detected_at`; an old gap no hole overlaps any more is closed at `now_us`."""
    intervals = state.intervals
    for seq in seqs:
        intervals = add_seq(intervals, seq)
    if intervals == state.intervals:
        return state, GapChange()
    new_open: list[Gap] = []
    opened = 0
    continued: set[int] = set()  # old gaps already carried on by a hole
    for lo, hi in holes(intervals):
        overlapping = [i for i, g in enumerate(state.open) if g.from_seq <= hi and lo <= g.to_seq]
        detected = min((state.open[i].detected_at_us for i in overlapping), default=now_us)
        # A brand-new hole, or a second fragment of a split gap, counts as opened, so that
        # opened − closed always equals the number of open gaps.
        if not set(overlapping) - continued:
            opened += 1
        continued.update(overlapping)
        new_open.append(Gap(state.source, lo, hi, detected))
    closed_now = [
        Gap(g.source, g.from_seq, g.to_seq, g.detected_at_us, now_us)
        for g in state.open
        if not any(g.from_seq <= h.to_seq and h.from_seq <= g.to_seq for h in new_open)
    ]
    closed = (closed_now[::-1] + state.closed)[:MAX_CLOSED]
    return SeqTrack(state.source, intervals, new_open, closed), GapChange(opened, len(closed_now))


def open_gaps(tracks: Iterable[SeqTrack]) -> list[tuple[str, int, int]]:
    """The order-independent part: (source, from, to) of every open gap, sorted."""
    return sorted((t.source, g.from_seq, g.to_seq) for t in tracks for g in t.open)
