"""The calc actors' bodies: merge batches into per-symbol state in Redis, build and publish W.

State lives only in Redis, so any worker can take any batch and any worker can die. calc-a is
one optimistic transaction (WATCH the states and the batch's done-marker, MULTI/EXEC), so two
workers touching one symbol never lose each other's ticks, and a redelivered batch (same Dramatiq
message id) is recognised by its marker and changes nothing.

By default one step does calc-a and calc-b together. With CALC_SPLIT, calc-a stores the state and,
in the same transaction, enqueues a calc-b message (queue `calc.a.done`) naming the symbols;
calc-b builds W from whatever state is current, so redelivered or reordered calc-b messages
converge on the same view.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from redis import Redis, WatchError
from redis.client import Pipeline

from backend.bus import events, stats
from backend.bus.ingest import dramatiq_message_parts
from backend.bus.keys import CALC_B_ACTOR, CALC_B_QUEUE, Keys
from backend.core.ticks import Tick
from backend.core.view import build_view
from backend.core.window import Entry, WindowDelta, WindowState, merge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalcContext:
    redis: Redis
    keys: Keys
    channel: str
    done_ttl_s: int
    stale_after_s: float
    split: bool = False


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
    if delta.add:
        pipe.zadd(key, {RedisWindowStore.member(e): e[0] for e in delta.add})
        pipe.zadd(prices_key, {RedisWindowStore.member(e): e[2] for e in delta.add})
    if delta.cutoff_us is not None:
        pipe.zremrangebyscore(key, "-inf", delta.cutoff_us)
    if delta.evict:
        pipe.zrem(prices_key, *(RedisWindowStore.member(e) for e in delta.evict))


def _store_view(pipe: Pipeline, ctx: CalcContext, state: WindowState, now_us: int) -> bool:
    """Queue the view's write and publication on `pipe`; False if there is no view to store."""
    view = build_view(state, now_us, ctx.stale_after_s)
    if view is None:
        return False
    pipe.set(ctx.keys.view(state.symbol), orjson.dumps(view))
    pipe.hset(ctx.keys.symbols, state.symbol, now_us)
    pipe.publish(ctx.channel, events.symbol_updated(state.symbol, view))
    return True


def _record_view_latency(pipe: Pipeline, ctx: CalcContext, latencies_us: list[int]) -> None:
    """Ingest→view latency histogram, in the caller's MULTI: counted once per applied write."""
    for name, value in stats.view_latency_fields(latencies_us).items():
        pipe.hincrby(ctx.keys.stats, name, value)


def _enqueue_calc_b(pipe: Pipeline, ctx: CalcContext, symbols: list[str]) -> None:
    """The same HSET + RPUSH as Dramatiq's enqueue, inside our MULTI: atomic with the state."""
    message_id = str(uuid.uuid4())
    head, tail = dramatiq_message_parts(
        CALC_B_QUEUE, message_id, int(time.time() * 1000), CALC_B_ACTOR
    )
    body = b",".join(orjson.dumps(s) for s in symbols)
    pipe.hset(ctx.keys.queue_messages(CALC_B_QUEUE), message_id, head + body + tail)
    pipe.rpush(ctx.keys.queue_list(CALC_B_QUEUE), message_id)


def apply_batch(ctx: CalcContext, message_id: str, ticks: Sequence[Tick], now_us: int) -> bool:
    """calc-a (and calc-b unless split) for one batch, once; False if already applied."""
    by_symbol: dict[str, list[Tick]] = defaultdict(list)
    for tick in ticks:
        by_symbol[tick.symbol].append(tick)
    symbols = sorted(by_symbol)
    state_keys = [ctx.keys.state(s) for s in symbols]
    marker = ctx.keys.calc_done(message_id)
    with ctx.redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(marker, *state_keys)
                if pipe.exists(marker):
                    return False
                raws = pipe.mget(state_keys) if state_keys else []
                merged = []
                for symbol, raw in zip(symbols, raws, strict=True):
                    store = RedisWindowStore(
                        pipe, ctx.keys.window(symbol), ctx.keys.window_prices(symbol)
                    )
                    merged.append(
                        merge(WindowState.from_json(raw, symbol), store, by_symbol[symbol], now_us)
                    )
                pipe.multi()
                late = opened = closed = 0
                latencies_us: list[int] = []
                for symbol, (state, delta, merge_stats) in zip(symbols, merged, strict=True):
                    _apply_delta(
                        pipe, ctx.keys.window(symbol), ctx.keys.window_prices(symbol), delta
                    )
                    late, opened, closed = (
                        late + merge_stats.late,
                        opened + merge_stats.gaps.opened,
                        closed + merge_stats.gaps.closed,
                    )
                    pipe.set(ctx.keys.state(symbol), state.to_json())
                    if not ctx.split and _store_view(pipe, ctx, state, now_us):
                        latencies_us += (now_us - t.received_us for t in by_symbol[symbol])
                _record_view_latency(pipe, ctx, latencies_us)
                if ctx.split and symbols:
                    _enqueue_calc_b(pipe, ctx, symbols)
                pipe.set(marker, b"1", ex=ctx.done_ttl_s)
                for name, value in (
                    ("calc_batches", 1), ("calc_ticks", len(ticks)), ("late_ticks", late),
                    ("gaps_opened", opened), ("gaps_closed", closed),
                ):  # fmt: skip
                    if value:
                        pipe.hincrby(ctx.keys.stats, name, value)
                pipe.execute()
                return True
            except WatchError:
                log.debug("calc-a: concurrent update on %s, retrying", symbols)


def build_views(ctx: CalcContext, symbols: Sequence[str], now_us: int) -> None:
    """calc-b: W from the current state of each symbol (idempotent; never goes backwards,
    because a state that changes under us aborts the write and is read again)."""
    with ctx.redis.pipeline() as pipe:
        for symbol in sorted(set(symbols)):
            while True:
                try:
                    pipe.watch(ctx.keys.state(symbol))
                    state = WindowState.from_json(pipe.get(ctx.keys.state(symbol)), symbol)
                    pipe.multi()
                    if _store_view(pipe, ctx, state, now_us) and state.last_received_us:
                        # One observation per view built: its newest tick's arrival → now.
                        _record_view_latency(pipe, ctx, [now_us - state.last_received_us])
                    pipe.execute()
                    break
                except WatchError:
                    log.debug("calc-b: %s changed, rebuilding", symbol)
