"""The calc actors' bodies: merge batches into per-symbol state in Redis, build and publish W.

State lives only in Redis (reached through `backend.bus.calc_store`), so any worker can take any
batch and any worker can die. calc-a is, per symbol of the batch, one optimistic transaction (WATCH
the symbol's state and the batch's done-marker hash, MULTI/EXEC), so two workers touching one symbol
never lose each other's ticks, and a redelivered batch (same Dramatiq message id) skips every symbol
its marker names: what was applied before a crash is not applied again, what was not is applied now.

By default one step does calc-a and calc-b together. With CALC_SPLIT, calc-a stores the state and,
in the same transaction, enqueues a calc-b message (queue `calc.a.done`) naming the symbols;
calc-b builds W from whatever state is current, so redelivered or reordered calc-b messages
converge on the same view.

Alerts: when the symbol has an enabled rule (`CalcContext.rules`), the same transaction appends
what it committed to the symbol's observation stream (each tick that became the latest, and the
view) and sends an `alerts.evaluate` message naming the symbol. Evaluation itself runs in its own
actor, never here.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

from redis import Redis, RedisError

from backend.bus import ledger, stats
from backend.bus.calc_store import CalcStore, SymbolTxn
from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.core.alerts.conditions import Observation
from backend.core.alerts.observations import tick_observations, view_observation
from backend.core.rebuild import CalcAction, calc_action, drop_skipped
from backend.core.ticks import Tick
from backend.core.view import View, build_view
from backend.core.window import WINDOW_US, Entry, WindowState, merge, to_entry

log = logging.getLogger(__name__)


class StateCache:
    """The last decoded state per symbol, keyed by its exact bytes in Redis.

    Decoding a state (JSON, Decimals, sequence tracks) is a large share of calc's CPU, and the state
    a worker reads is usually the one it wrote itself. Redis stays the only truth: a cached state is
    used only when the bytes just read under WATCH are identical, so another worker's write (or a
    lost transaction) simply misses. States are immutable values, so threads can share it.
    """

    def __init__(self) -> None:
        self._by_symbol: dict[str, tuple[bytes, WindowState]] = {}

    def decode(self, raw: bytes | None, symbol: str) -> WindowState:
        hit = self._by_symbol.get(symbol)
        if raw is not None and hit is not None and hit[0] == raw:
            return hit[1]
        return WindowState.from_json(raw, symbol)

    def remember(self, raw: bytes, state: WindowState) -> None:
        self._by_symbol[state.symbol] = (raw, state)


class SymbolLocks:
    """One lock per symbol, per process: this process's threads take turns on a symbol instead
    of colliding in Redis and retrying. Only an optimisation: WATCH still guards correctness,
    across processes and machines."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}

    def hold(self, symbol: str) -> threading.Lock:
        lock = self._locks.get(symbol)
        if lock is None:
            lock = self._locks.setdefault(symbol, threading.Lock())
        return lock


class WatchedSymbols(Protocol):
    """Which symbols have rules to evaluate (live: the rules mirror's cache; a replay: its
    sandboxed rules)."""

    def watched(self, symbol: str) -> bool: ...


@dataclass(frozen=True)
class CalcContext:
    redis: Redis
    keys: Keys  # the namespace calc reads and writes (a replay passes its own)
    ring: Ring
    done_ttl_s: int
    stale_after_s: float
    split: bool = False
    rules: WatchedSymbols | None = None  # None: alerts off (no observation recorded, zero cost)
    # False: observations are recorded but no `alerts.evaluate` message is sent (a replay
    # evaluates its own sandbox, in its driver, right after each group).
    notify_evaluation: bool = True
    # True (live): a known symbol without state is fenced and rebuilt from PostgreSQL + the outbox
    # (tasks/rebuild.py). A replay has no rebuild to ask for: its namespace starts empty.
    rebuild_lost_state: bool = True
    states: StateCache = field(default_factory=StateCache)
    locks: SymbolLocks = field(default_factory=SymbolLocks)
    store: CalcStore = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", CalcStore(self.redis, self.keys, self.ring))


def _write_view(txn: SymbolTxn, ctx: CalcContext, state: WindowState, now_us: int) -> View | None:
    """Queue the view's write and publication; the view, or None if there is none to store."""
    view = build_view(state, now_us, ctx.stale_after_s)
    if view is None:
        return None
    last_ts_us, last_event_id = state.latest[-1][0], state.latest[-1][1]
    txn.write_view(view, last_ts_us=last_ts_us, last_event_id=last_event_id, now_us=now_us)
    return view


def _watched(ctx: CalcContext, symbol: str) -> bool:
    return ctx.rules is not None and ctx.rules.watched(symbol)


@dataclass(frozen=True, slots=True)
class Batch:
    """One calc message: its id (the name of its done-marker) and its ticks."""

    message_id: str
    ticks: Sequence[Tick]


def apply_batch(ctx: CalcContext, message_id: str, ticks: Sequence[Tick], now_us: int) -> bool:
    """`apply_batches` for one message."""
    return apply_batches(ctx, [Batch(message_id, ticks)], now_us)


def apply_batches(ctx: CalcContext, batches: Sequence[Batch], now_us: int) -> bool:
    """calc-a (and calc-b unless split) for several messages at once, once per symbol; False if
    nothing was left to apply (each was a redelivery of a batch already applied).

    Each symbol is its own optimistic transaction over every batch that carries it, so what is
    queued together costs one read, one merge and one write per symbol, however many messages
    it came in; each batch's done-marker names the symbols it applied, so any of them
    redelivered alone later is recognised. Concurrent workers only collide when they touch the
    same symbol at the same moment, and a collision re-does one symbol, not the batches.
    (One transaction over every symbol collided on almost every batch as soon as two workers
    ran, and retries ate most of the throughput.) Workers start at a different symbol per step
    and, within a process, take turns per symbol.
    """
    unique: dict[str, Batch] = {}
    for batch in batches:  # a message requeued while in hand can be claimed beside itself
        unique.setdefault(batch.message_id, batch)
    batches = list(unique.values())
    parts: dict[str, list[tuple[Batch, list[Tick]]]] = defaultdict(list)
    for batch in batches:
        by_symbol: dict[str, list[Tick]] = defaultdict(list)
        for tick in batch.ticks:
            by_symbol[tick.symbol].append(tick)
        for symbol, ticks in by_symbol.items():
            parts[symbol].append((batch, ticks))
    symbols = sorted(parts)
    if not symbols:
        return False
    # calc_batches counts each message once: with the first of its symbols.
    counted = {
        batch.message_id: min(tick.symbol for tick in batch.ticks)
        for batch in batches
        if batch.ticks
    }
    start = zlib.crc32(batches[0].message_id.encode()) % len(symbols)
    applied = False
    failed: list[tuple[str, Exception]] = []
    for symbol in symbols[start:] + symbols[:start]:
        symbol_parts = [
            _Part(batch.message_id, ticks, counted[batch.message_id] == symbol)
            for batch, ticks in parts[symbol]
        ]
        try:
            with ctx.locks.hold(symbol):
                applied |= _apply_symbol(ctx, symbol, symbol_parts, now_us)
        except RedisError:
            raise  # Redis is gone: no other symbol would fare better
        except Exception as exc:  # a poison symbol must not hold back the others
            failed.append((symbol, exc))
    if failed:
        names = ", ".join(symbol for symbol, _ in failed)
        raise SymbolsFailed(f"calc failed for {names}: {failed[0][1]!r}") from failed[0][1]
    return applied


class SymbolsFailed(Exception):
    """Some symbols of a batch could not be applied (the others were). Dramatiq retries the
    message, then dead-letters it; either way only the failed symbols are left to apply."""


@dataclass(frozen=True, slots=True)
class _Part:
    """One message's ticks of one symbol."""

    message_id: str
    ticks: list[Tick]
    counts_batch: bool  # this symbol counts the message in calc_batches


def _apply_symbol(ctx: CalcContext, symbol: str, parts: list[_Part], now_us: int) -> bool:
    """Merge one symbol's ticks of some batches into its state, once per batch (each batch's
    marker hash names the symbols it already applied); False if every batch had."""
    watched = _watched(ctx, symbol)  # outside the WATCH: a rules reload must not widen it
    message_ids = [part.message_id for part in parts]
    # Where the window's cutoff goes if the newest tick of these batches becomes the latest.
    cutoff_us = max(tick.ts_us for part in parts for tick in part.ticks) - WINDOW_US

    def step(txn: SymbolTxn) -> bool:
        read = txn.read_markers_and_state(message_ids, cutoff_us)
        todo = [part for part, done in zip(parts, read.applied, strict=True) if not done]
        if not todo:
            return False
        ticks = [tick for part in todo for tick in part.ticks]
        batches_counted = sum(part.counts_batch for part in todo)
        done_ids = [part.message_id for part in todo]
        action = calc_action(
            fenced=read.fenced,
            has_state=read.raw_state is not None,
            known=read.known and ctx.rebuild_lost_state,
        )
        if action is not CalcAction.MERGE:
            return _buffer_for_rebuild(txn, ctx, done_ids, ticks, now_us, batches_counted, action)
        prior = ctx.states.decode(read.raw_state, symbol)
        # Ticks a rebuild already counted while this message was queued are dropped, once.
        fresh, skip_left, skipped = drop_skipped(prior.skip, ticks)
        state, delta, merge_stats = merge(prior, txn.window, fresh, now_us)
        if skipped:
            state = replace(state, skip=skip_left, version=state.version + 1)
        txn.begin()
        txn.apply_delta(delta)
        raw_state = state.to_json()
        txn.put_state(raw_state)
        counters = {
            ledger.CALC_BATCHES: batches_counted, ledger.CALC_TICKS: len(ticks),
            ledger.CALC_STEPS: 1,
            ledger.LATE_TICKS: merge_stats.late, ledger.GAPS_OPENED: merge_stats.gaps.opened,
            ledger.GAPS_CLOSED: merge_stats.gaps.closed, ledger.REBUILD_SKIPPED: skipped,
        }  # fmt: skip
        view = None if ctx.split else _write_view(txn, ctx, state, now_us)
        if view is not None and fresh:
            counters |= stats.view_latency_fields([now_us - t.received_us for t in fresh])
        if ctx.split:
            txn.enqueue_calc_b([symbol])
        if watched:
            # Every tick of the batches after the prior latest became the latest in turn, also
            # one already out of the window when they end (`delta.add` leaves those out).
            observations = tick_observations(prior.last, map(to_entry, ticks))
            opened = merge_stats.gaps.opened > 0
            if view is not None and state.last is not None:
                observations.append(view_observation(view, ts_us=state.last[0], gap_opened=opened))
            elif opened and state.last is not None:
                # Split: calc-b builds the view without this merge's facts; the gap's opening is
                # observed here, and calc-b's view observation (gap_opened 0) re-arms it.
                observations.append(_gap_opened(state.last))
            txn.queue_observations(observations, notify=ctx.notify_evaluation)
        txn.mark_done(done_ids, ctx.done_ttl_s)
        txn.add_counters(counters)
        txn.commit()
        ctx.states.remember(raw_state, state)
        return True

    return ctx.store.transact(symbol, step)


def _buffer_for_rebuild(
    txn: SymbolTxn,
    ctx: CalcContext,
    message_ids: list[str],
    ticks: list[Tick],
    now_us: int,
    batches_counted: int,
    action: CalcAction,
) -> bool:
    """A rebuild fences the symbol (or must: its state is lost): keep the ticks in the fence,
    merge nothing, publish nothing, and mark the messages done, all in one MULTI. The rebuild's
    swap merges the buffer into the state it read (tasks/rebuild.py); the ticks count as
    applied (`calc_ticks`) now, because these messages will never bring them again."""
    txn.begin()
    opening = action is CalcAction.OPEN_FENCE
    txn.buffer_in_fence(ticks, open_since_us=now_us if opening else None)
    if opening:
        txn.request_rebuild()
        log.warning("calc: no state for known symbol %s; fenced, rebuild requested", txn.symbol)
    txn.mark_done(message_ids, ctx.done_ttl_s)
    txn.add_counters({ledger.CALC_BATCHES: batches_counted, ledger.CALC_TICKS: len(ticks),
                      ledger.CALC_STEPS: 1, ledger.REBUILD_BUFFERED: len(ticks)})  # fmt: skip
    txn.commit()
    return True


def build_views(ctx: CalcContext, symbols: Sequence[str], now_us: int) -> None:
    """calc-b: W from the current state of each symbol (idempotent; never goes backwards,
    because a state that changes under us aborts the write and is read again)."""

    def step(txn: SymbolTxn, watched: bool) -> None:
        state = ctx.states.decode(txn.read_state(), txn.symbol)
        txn.begin()
        view = _write_view(txn, ctx, state, now_us)
        if view is not None and state.last_received_us:
            # One observation per view built: its newest tick's arrival → now.
            txn.add_counters(stats.view_latency_fields([now_us - state.last_received_us]))
        if view is not None and state.last is not None and watched:
            txn.queue_observations([view_observation(view, ts_us=state.last[0], gap_opened=False)])
        txn.commit()

    for symbol in sorted(set(symbols)):
        watched = _watched(ctx, symbol)
        ctx.store.transact(symbol, partial(step, watched=watched), count_conflicts=False)


def _gap_opened(last: Entry) -> Observation:
    ts_us, event_id, price, volume, source = last
    return Observation(
        kind="view", ts_us=ts_us, event_id=event_id, values={"gap_opened": 1.0},
        price=price, volume=volume, source=source,
    )  # fmt: skip
