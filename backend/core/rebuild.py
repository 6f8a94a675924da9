"""Rebuilding a symbol's live calc state from the durable ticks: the pure rules and the contracts.

The durable ticks are PostgreSQL's `md_ticks` plus the outbox (every accepted tick is in one of
them at every moment). A rebuild reads them (R) while ingest and calc keep running; the danger is
counting a tick twice: once because it is in R, and again when its calc message, still queued,
is merged after the rebuilt state is in place. Two devices make it exact (docs/services/rebuild.md
has the whole argument):

- the fence: while it exists calc does not merge a symbol, it buffers the ticks it would have
  merged (B) in the fence hash, and marks its message done. Every tick is therefore either in the
  old state (accepted before the fence, so in R), in B, or in a message not yet applied.
- the skip set: at the swap the ticks of still-pending messages that the new state already holds
  (Pend ∩ (R ∪ B)) are stored with the state; calc drops them when their message finally comes.

This module holds the decisions (what calc does with a batch; what a merge may take from a
message), and the API's request/status contracts. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from backend.core.contract import Contract
from backend.core.ticks import SYMBOL_RE, Tick

# The fence hash's one field that is not a buffered tick (event ids are printable, so a NUL
# never collides): when the fence was set and by whom (`fence_stamp`). It makes an empty fence
# exist, and it tells one fence from the next: a rebuild swaps only under the fence it read R in.
FENCE_SINCE_FIELD = "\x00since"


def fence_stamp(now_us: int, nonce: str) -> str:
    """The fence's identity: set once, with the fence (HSETNX), so a fence lifted and set again
    (another rebuild swapped in between) never looks like the one a rebuild read R under."""
    return f"{now_us}:{nonce}"


class CalcAction(StrEnum):
    MERGE = "merge"  # the usual: merge into the state
    BUFFER = "buffer"  # a rebuild is under way: put the ticks in the fence, merge nothing
    OPEN_FENCE = "open_fence"  # the state is lost: fence, buffer, and ask for a rebuild


def calc_action(*, fenced: bool, has_state: bool, known: bool) -> CalcAction:
    """What calc does with a symbol's ticks, given what its one read found.

    A symbol with a view (`known`: the view-order hash names it) but no state lost its state (a
    state-format bump, an evicted key): merging into an empty state would publish a view of
    just this batch, so calc fences the symbol and asks for a rebuild instead.
    """
    if fenced:
        return CalcAction.BUFFER
    if not has_state and known:
        return CalcAction.OPEN_FENCE
    return CalcAction.MERGE


def drop_skipped(
    skip: frozenset[str], ticks: Sequence[Tick]
) -> tuple[list[Tick], frozenset[str], int]:
    """The ticks a merge may take, the skip set left after it, and how many were dropped.

    `skip` names ticks a rebuild already put into the state while their message was still
    queued; each id is dropped once and forgotten (a tick is in exactly one message: ingest
    de-duplicates), so the set only holds what is still in flight.
    """
    if not skip:
        return list(ticks), skip, 0
    kept = [t for t in ticks if t.event_id not in skip]
    seen = {t.event_id for t in ticks} & skip
    return kept, skip - seen, len(ticks) - len(kept)


def not_in(ticks: Iterable[Tick], held: set[str] | frozenset[str]) -> list[Tick]:
    """`ticks` minus those whose event id is `held` (B minus R), each event id once."""
    out: dict[str, Tick] = {}
    for tick in ticks:
        if tick.event_id not in held:
            out.setdefault(tick.event_id, tick)
    return list(out.values())


def pending_duplicates(
    pending: Iterable[str], read: set[str] | frozenset[str], buffered: Iterable[str]
) -> frozenset[str]:
    """D = Pend ∩ (R ∪ B): ticks of unapplied messages that the rebuilt state already counts."""
    held = set(buffered)
    return frozenset(e for e in pending if e in read or e in held)


# --- the API's contracts ------------------------------------------------------------------------
Symbol = Annotated[str, Field(min_length=1, max_length=32)]


class RebuildRequest(Contract):
    """`POST /admin/rebuild`: the symbols to rebuild, or every known symbol when omitted."""

    symbols: list[Symbol] | None = Field(default=None, min_length=1, max_length=10_000)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        bad = [s for s in value if not SYMBOL_RE.match(s)]
        if bad:
            raise ValueError(f"invalid symbols {bad[:5]}: must match {SYMBOL_RE.pattern}")
        return sorted(set(value))


class RebuildQueued(Contract):
    """The answer to `POST /admin/rebuild` (202): one `rebuild_symbols` message per symbol."""

    symbols: list[str]
    messages: int


RebuildPhase = Literal["queued", "fenced", "rebuilding", "done", "failed"]


class RebuildStatus(Contract):
    """One symbol's last rebuild, as kept in the status hash by the rebuild code."""

    symbol: str
    phase: RebuildPhase
    ticks_read: int = 0
    skipped: int = 0  # ticks of pending messages the rebuilt state already held (the skip set)
    buffered: int = 0  # ticks calc buffered in the fence while it was read
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    error: str | None = None


class RebuildStatuses(Contract):
    """`GET /admin/rebuild`: every symbol with a rebuild on record, sorted."""

    rebuilds: list[RebuildStatus]
