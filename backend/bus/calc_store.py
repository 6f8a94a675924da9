"""calc's Redis: per-symbol window sorted sets, state, done-marker, view write, calc-b enqueue.

Each symbol step is one optimistic transaction: WATCH the symbol's state (and the batch's
done-marker), read, then MULTI/EXEC the writes; a concurrent write aborts the EXEC and the step
is run again. `CalcStore.transact` owns that loop; the calc logic (tasks/calc.py) gets a
`SymbolTxn` to read and queue through. Every key comes from the `Keys` the store is given, so a
replay can run the same calc into a namespace of its own.

The reads and writes are shaped for few round trips: the marker and the state are read in one
script, the step's counters go in one command, and each window member is encoded once for both
sorted sets.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson
from redis import Redis, WatchError
from redis.client import Pipeline

from backend.bus import ledger, stats, views
from backend.bus.enqueue import queue_message
from backend.bus.keys import (
    ALERTS_EVALUATE_ACTOR,
    ALERTS_EVALUATE_QUEUE,
    CALC_B_ACTOR,
    CALC_B_QUEUE,
    REBUILD_ACTOR,
    REBUILD_QUEUE,
    Keys,
)
from backend.bus.lua import CalcStepRead, read_calc_step
from backend.bus.realtime import Ring
from backend.core.alerts.conditions import Observation
from backend.core.alerts.observations import encode_observations
from backend.core.rebuild import FENCE_SINCE_FIELD, fence_stamp
from backend.core.ticks import Tick, encode_tick
from backend.core.view import View
from backend.core.window import Entry, WindowDelta

log = logging.getLogger(__name__)

T = TypeVar("T")

# Approximate cap of a symbol's observation stream (entries: one per committed transaction): far
# above what evaluation ever lags behind, a bound on memory if evaluation stops altogether.
OBSERVATIONS_MAXLEN = 100_000

# How calc waits while a rebuild's swap has sealed the symbol (`Keys.rebuild_seal`).
SEAL_POLL_S = 0.002
SEAL_WAIT_MAX_S = 5.0


class RedisWindowStore:
    """The window's ticks in a sorted set. Members lead with the event_id and a NUL, so Redis
    orders equal timestamps by event_id, exactly as (ts, event_id) does in Python."""

    def __init__(self, pipe: Pipeline, key: str, prices_key: str) -> None:
        self.pipe = pipe  # in WATCH (immediate) mode: reads run now, under the watch
        self.key = key
        self.prices_key = prices_key  # the same members, scored by price: high/low in O(log n)
        self._prefetch_cutoff: int | None = None
        self._prefetch_upto: list[tuple[bytes, float]] = []
        self._prefetch_first: list[tuple[bytes, float]] = []

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

    def prefetched(self, read: CalcStepRead) -> None:
        """Answer `upto` and `first_after` at `read.cutoff_us` from what the step's read already
        fetched (the store before this batch, like a live read), saving two round trips."""
        self._prefetch_cutoff = read.cutoff_us
        self._prefetch_upto = read.upto
        self._prefetch_first = read.first_after

    def upto(self, cutoff_us: int) -> list[Entry]:
        if cutoff_us == self._prefetch_cutoff:
            return self.decode(self._prefetch_upto)
        return self.decode(self.pipe.zrangebyscore(self.key, "-inf", cutoff_us, withscores=True))

    def first_after(self, cutoff_us: int) -> Entry | None:
        if cutoff_us == self._prefetch_cutoff:
            raw = self._prefetch_first
        else:
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


class SymbolTxn:
    """One attempt at one symbol's transaction: reads under WATCH, then writes after `begin()`."""

    def __init__(self, pipe: Pipeline, keys: Keys, ring: Ring, symbol: str) -> None:
        self._pipe = pipe
        self._keys = keys
        self._ring = ring
        self.symbol = symbol
        self.window = RedisWindowStore(pipe, keys.window(symbol), keys.window_prices(symbol))

    # --- reads (under WATCH) -----------------------------------------------------------------
    def read_markers_and_state(
        self, message_ids: Sequence[str], window_cutoff_us: int | None = None
    ) -> CalcStepRead:
        """WATCH the batches' markers, the state and the rebuild fence; which batches already
        applied the symbol, the state, whether a rebuild fences it and whether it has a view, in
        one round trip. The fence is watched so that a rebuild setting it (or swapping its state
        in) aborts a merge begun without it: after the fence is set, nothing merges.

        `window_cutoff_us`: the window's cutoff if the batch's newest tick becomes the latest
        (when it does not, the cutoff does not move and the merge evicts nothing); the window
        around it is read in the same round trip and the merge's reads answered from it."""
        markers = [self._keys.calc_done(message_id) for message_id in message_ids]
        state_key = self._keys.state(self.symbol)
        fence, seal = self._keys.rebuild_fence(self.symbol), self._keys.rebuild_seal(self.symbol)
        waited_s = 0.0
        while True:
            self._pipe.watch(*markers, state_key, fence)
            read = read_calc_step(
                self._pipe, done_markers=markers, state=state_key, fence=fence,
                view_order=self._keys.view_order, seal=seal, window=self.window.key,
                symbol=self.symbol, cutoff_us=window_cutoff_us,
            )  # fmt: skip
            if not read.sealed or waited_s >= SEAL_WAIT_MAX_S:
                self.window.prefetched(read)
                return read
            # A rebuild's swap kept losing to calc's buffering: let it through (ms), then read
            # again. The seal expires by itself, and the wait is bounded in any case.
            self._pipe.unwatch()
            time.sleep(SEAL_POLL_S)
            waited_s += SEAL_POLL_S

    def read_state(self) -> bytes | None:
        """WATCH the state and read it."""
        state_key = self._keys.state(self.symbol)
        self._pipe.watch(state_key)
        return self._pipe.get(state_key)

    # --- writes (queued in MULTI) --------------------------------------------------------------
    def begin(self) -> None:
        self._pipe.multi()

    def apply_delta(self, delta: WindowDelta) -> None:
        # Raw commands with flat arguments: redis-py's zadd() re-walks a dict per call, and each
        # member is encoded once for both sorted sets.
        pipe, key, prices_key = self._pipe, self.window.key, self.window.prices_key
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

    def buffer_in_fence(self, ticks: list[Tick], *, open_since_us: int | None = None) -> None:
        """Keep `ticks` in the symbol's rebuild fence instead of merging them (HSETNX: the first
        write of an event id wins, as everywhere). `open_since_us`: set the fence too (calc found
        the state lost), stamped with that time."""
        fence = self._keys.rebuild_fence(self.symbol)
        if open_since_us is not None:
            stamp = fence_stamp(open_since_us, uuid.uuid4().hex)
            self._pipe.hsetnx(fence, FENCE_SINCE_FIELD, stamp)
        for tick in ticks:
            self._pipe.hsetnx(fence, tick.event_id, encode_tick(tick))

    def request_rebuild(self) -> None:
        """Enqueue a `rebuild_symbols` message for this symbol, inside our MULTI: a fence that
        calc sets always has its rebuild coming."""
        queue_message(
            self._pipe, self._keys, REBUILD_QUEUE, REBUILD_ACTOR, [orjson.dumps(self.symbol)]
        )

    def put_state(self, raw_state: bytes) -> None:
        self._pipe.set(self._keys.state(self.symbol), raw_state)

    def write_view(self, view: View, *, last_ts_us: int, last_event_id: str, now_us: int) -> None:
        """The guarded view write and its `symbol.updated` publication (`views.queue_write`)."""
        views.queue_write(
            self._pipe, self._keys, self._ring, symbol=self.symbol, view=view,
            last_ts_us=last_ts_us, last_event_id=last_event_id, now_us=now_us,
        )  # fmt: skip

    def enqueue_calc_b(self, symbols: list[str]) -> None:
        """The same HSET + RPUSH as Dramatiq's enqueue, inside our MULTI: atomic with the state."""
        items = [orjson.dumps(s) for s in symbols]
        queue_message(self._pipe, self._keys, CALC_B_QUEUE, CALC_B_ACTOR, items)

    def queue_observations(self, observations: list[Observation], *, notify: bool = True) -> None:
        """Append `observations` to the symbol's alert stream (one entry for this commit) and send
        one `alerts.evaluate`
        message for the symbol, inside our MULTI: a committed view is always evaluated, an
        aborted one never. The message only names the symbol; what to evaluate is the stream
        after the symbol's cursor, so redelivered or coalesced messages evaluate nothing twice."""
        if not observations:
            return
        self._pipe.execute_command(
            "XADD", self._keys.alert_observations(self.symbol), "MAXLEN", "~",
            OBSERVATIONS_MAXLEN, "*", "o", encode_observations(observations),
        )  # fmt: skip
        if notify:
            queue_message(
                self._pipe, self._keys, ALERTS_EVALUATE_QUEUE, ALERTS_EVALUATE_ACTOR,
                [orjson.dumps(self.symbol)],
            )  # fmt: skip

    def mark_done(self, message_ids: Sequence[str], ttl_s: int) -> None:
        """Record that batches `message_ids` applied this symbol (a redelivery then skips it)."""
        for message_id in message_ids:
            marker = self._keys.calc_done(message_id)
            self._pipe.hset(marker, self.symbol, b"1")
            self._pipe.expire(marker, ttl_s)

    def add_counters(self, counters: dict[str, int]) -> None:
        stats.add_counters(self._pipe, self._keys.stats, counters)

    def commit(self) -> None:
        """EXEC; raises WatchError if a watched key changed since it was read."""
        self._pipe.execute()


class CalcStore:
    def __init__(self, redis: Redis, keys: Keys, ring: Ring) -> None:
        self._redis = redis
        self.keys = keys
        self._ring = ring

    def transact(
        self, symbol: str, step: Callable[[SymbolTxn], T], *, count_conflicts: bool = True
    ) -> T:
        """Run `step` until its transaction commits without a concurrent write in between.

        A redone attempt is counted (`calc_conflicts`) when `count_conflicts`: how often workers
        collide on one symbol is the figure that tells whether more workers would help.
        """
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    return step(SymbolTxn(pipe, self.keys, self._ring, symbol))
                except WatchError:
                    log.debug("calc: concurrent update on %s, retrying", symbol)
                    if count_conflicts:
                        self._redis.hincrby(self.keys.stats, ledger.CALC_CONFLICTS, 1)
