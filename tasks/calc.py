"""The calc actors' bodies: merge batches into per-symbol state in Redis, build and publish W.

State lives only in Redis, so any worker can take any batch and any worker can die. calc-a is,
per symbol of the batch, one optimistic transaction (WATCH the symbol's state and the batch's
done-marker hash, MULTI/EXEC), so two workers touching one symbol never lose each other's ticks,
and a redelivered batch (same Dramatiq message id) skips every symbol its marker names: what was
applied before a crash is not applied again, what was not is applied now.

By default one step does calc-a and calc-b together. With CALC_SPLIT, calc-a stores the state and,
in the same transaction, enqueues a calc-b message (queue `calc.a.done`) naming the symbols;
calc-b builds W from whatever state is current, so redelivered or reordered calc-b messages
converge on the same view.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from redis import Redis, RedisError, WatchError
from redis.client import Pipeline

from backend.bus import events, stats
from backend.bus.ingest import dramatiq_message_parts
from backend.bus.keys import CALC_B_ACTOR, CALC_B_QUEUE, Keys
from backend.core.ticks import Tick
from backend.core.view import build_view
from backend.core.window import Entry, WindowDelta, WindowState, merge

log = logging.getLogger(__name__)


class StateCache:
    """The last decoded state per symbol, keyed by its exact bytes in Redis.

    Decoding a state (JSON, Decimals, sequence tracks) was ~15 % of calc's CPU, and the state a
    worker reads is usually the one it wrote itself. Redis stays the only truth: a cached state
    is used only when the bytes just read under WATCH are identical, so another worker's write
    (or a lost transaction) simply misses. States are immutable values, so threads can share it.
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


@dataclass(frozen=True)
class CalcContext:
    redis: Redis
    keys: Keys
    channel: str
    done_ttl_s: int
    stale_after_s: float
    split: bool = False
    states: StateCache = field(default_factory=StateCache)
    locks: SymbolLocks = field(default_factory=SymbolLocks)


class RedisWindowStore:
    """The window's ticks in a sorted set. Members lead with the event_id and a NUL, so Redis
    orders equal timestamps by event_id, exactly as (ts, event_id) does in Python."""

    def __init__(self, pipe: Pipeline, key: str, prices_key: str) -> None:
        self.pipe = pipe  # in WATCH (immediate) mode: reads run now, under the watch
        self.key = key
        self.prices_key = prices_key  # the same members, scored by price: high/low in O(log n)

    @staticmethod
    def member(entry: Entry) -> bytes:
        return entry[1].encode() + b"\x00" + orjson.dumps([entry[2], entry[3], entry[4]])

    @staticmethod
    def decode(raw: list[tuple[bytes, float]]) -> list[Entry]:
        out: list[Entry] = []
        for member, score in raw:
            event_id, _, rest = member.partition(b"\x00")
            price, volume, source = orjson.loads(rest)
            out.append((int(score), event_id.decode(), float(price), float(volume), source))
        return out

    def upto(self, cutoff_us: int) -> list[Entry]:
        return self.decode(self.pipe.zrangebyscore(self.key, "-inf", cutoff_us, withscores=True))

    def first_after(self, cutoff_us: int) -> Entry | None:
        raw = self.pipe.zrangebyscore(
            self.key, f"({cutoff_us}", "+inf", start=0, num=1, withscores=True
        )
        entries = self.decode(raw)
        return entries[0] if entries else None

    def extremes_without(self, evicted: list[Entry]) -> tuple[float | None, float | None]:
        gone = {self.member(e) for e in evicted}
        depth = len(gone)  # the first depth + 1 by price hold at least one that stays, if any

        def first_kept(raw: list[tuple[bytes, float]]) -> float | None:
            return next((score for member, score in raw if member not in gone), None)

        high = first_kept(self.pipe.zrevrange(self.prices_key, 0, depth, withscores=True))
        low = first_kept(self.pipe.zrange(self.prices_key, 0, depth, withscores=True))
        return high, low


def _apply_delta(pipe: Pipeline, key: str, prices_key: str, delta: WindowDelta) -> None:
    # Raw commands with flat arguments: redis-py's zadd() re-walks a dict per call, and each
    # member is encoded once for both sorted sets.
    if delta.add:
        members = [RedisWindowStore.member(e) for e in delta.add]
        by_time: list[bytes | int | float] = ["ZADD", key]
        by_price: list[bytes | int | float] = ["ZADD", prices_key]
        for entry, member in zip(delta.add, members, strict=True):
            by_time += (entry[0], member)
            by_price += (entry[2], member)
        pipe.execute_command(*by_time)
        pipe.execute_command(*by_price)
    if delta.cutoff_us is not None:
        pipe.zremrangebyscore(key, "-inf", delta.cutoff_us)
    if delta.evict:
        pipe.zrem(prices_key, *(RedisWindowStore.member(e) for e in delta.evict))


def _store_view(pipe: Pipeline, ctx: CalcContext, state: WindowState, now_us: int) -> bool:
    """Queue the view's write and publication on `pipe`; False if there is no view to store."""
    view = build_view(state, now_us, ctx.stale_after_s)
    if view is None:
        return False
    pipe.set(ctx.keys.view(state.symbol), view.to_json_bytes())
    pipe.hset(ctx.keys.symbols, state.symbol, now_us)
    pipe.publish(ctx.channel, events.symbol_updated(state.symbol, view))
    return True


def _record_view_latency(pipe: Pipeline, ctx: CalcContext, latencies_us: list[int]) -> None:
    """Ingest→view latency histogram, in the caller's MULTI: counted once per applied write."""
    stats.add_counters(pipe, ctx.keys.stats, stats.view_latency_fields(latencies_us))


def _enqueue_calc_b(pipe: Pipeline, ctx: CalcContext, symbols: list[str]) -> None:
    """The same HSET + RPUSH as Dramatiq's enqueue, inside our MULTI: atomic with the state."""
    message_id = str(uuid.uuid4())
    head, tail = dramatiq_message_parts(
        CALC_B_QUEUE, message_id, int(time.time() * 1000), CALC_B_ACTOR
    )
    body = b",".join(orjson.dumps(s) for s in symbols)
    pipe.hset(ctx.keys.queue_messages(CALC_B_QUEUE), message_id, head + body + tail)
    pipe.rpush(ctx.keys.queue_list(CALC_B_QUEUE), message_id)


# Under WATCH, one round trip: has this batch already applied the symbol, and its state.
_READ_STEP_LUA = "return {redis.call('HEXISTS', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2])}"


def apply_batch(ctx: CalcContext, message_id: str, ticks: Sequence[Tick], now_us: int) -> bool:
    """calc-a (and calc-b unless split) for one batch, once per symbol; False if nothing was left
    to apply (a redelivery of a batch already applied).

    Each symbol is its own optimistic transaction, so concurrent workers only collide when they
    touch the same symbol at the same moment, and a collision re-does one symbol, not the batch.
    (One transaction over every symbol of a batch collided on almost every batch as soon as two
    workers ran: 4 threads lost two thirds of their throughput to retries.) Workers start at a
    different symbol per message and, within a process, take turns per symbol.
    """
    by_symbol: dict[str, list[Tick]] = defaultdict(list)
    for tick in ticks:
        by_symbol[tick.symbol].append(tick)
    symbols = sorted(by_symbol)
    if not symbols:
        return False
    marker = ctx.keys.calc_done(message_id)
    start = zlib.crc32(message_id.encode()) % len(symbols)
    applied = False
    failed: list[tuple[str, Exception]] = []
    for symbol in symbols[start:] + symbols[:start]:
        try:
            with ctx.locks.hold(symbol):
                counts_batch = symbol == symbols[0]  # calc_batches: once, with one symbol
                applied |= _apply_symbol(
                    ctx, marker, symbol, by_symbol[symbol], now_us, counts_batch
                )
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


def _apply_symbol(
    ctx: CalcContext,
    marker: str,
    symbol: str,
    ticks: list[Tick],
    now_us: int,
    counts_batch: bool,
) -> bool:
    """Merge one symbol's ticks of a batch into its state, once (the marker hash names the
    symbols of the batch already applied); False if they were."""
    state_key = ctx.keys.state(symbol)
    with ctx.redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(marker, state_key)
                done, raw = pipe.eval(_READ_STEP_LUA, 2, marker, state_key, symbol)
                if done:
                    return False
                store = RedisWindowStore(
                    pipe, ctx.keys.window(symbol), ctx.keys.window_prices(symbol)
                )
                state, delta, merge_stats = merge(
                    ctx.states.decode(raw, symbol), store, ticks, now_us
                )
                pipe.multi()
                _apply_delta(pipe, ctx.keys.window(symbol), ctx.keys.window_prices(symbol), delta)
                raw_state = state.to_json()
                pipe.set(state_key, raw_state)
                counters = {
                    "calc_batches": int(counts_batch), "calc_ticks": len(ticks),
                    "late_ticks": merge_stats.late, "gaps_opened": merge_stats.gaps.opened,
                    "gaps_closed": merge_stats.gaps.closed,
                }  # fmt: skip
                if not ctx.split and _store_view(pipe, ctx, state, now_us):
                    counters |= stats.view_latency_fields([now_us - t.received_us for t in ticks])
                if ctx.split:
                    _enqueue_calc_b(pipe, ctx, [symbol])
                pipe.hset(marker, symbol, b"1")
                pipe.expire(marker, ctx.done_ttl_s)
                stats.add_counters(pipe, ctx.keys.stats, counters)
                pipe.execute()
                ctx.states.remember(raw_state, state)
                return True
            except WatchError:
                log.debug("calc-a: concurrent update on %s, retrying", symbol)
                ctx.redis.hincrby(ctx.keys.stats, "calc_conflicts", 1)


def build_views(ctx: CalcContext, symbols: Sequence[str], now_us: int) -> None:
    """calc-b: W from the current state of each symbol (idempotent; never goes backwards,
    because a state that changes under us aborts the write and is read again)."""
    with ctx.redis.pipeline() as pipe:
        for symbol in sorted(set(symbols)):
            while True:
                try:
                    pipe.watch(ctx.keys.state(symbol))
                    state = ctx.states.decode(pipe.get(ctx.keys.state(symbol)), symbol)
                    pipe.multi()
                    if _store_view(pipe, ctx, state, now_us) and state.last_received_us:
                        # One observation per view built: its newest tick's arrival → now.
                        _record_view_latency(pipe, ctx, [now_us - state.last_received_us])
                    pipe.execute()
                    break
                except WatchError:
                    log.debug("calc-b: %s changed, rebuilding", symbol)
