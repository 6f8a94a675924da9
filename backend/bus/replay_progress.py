"""A replay driver's commits: its record, its candles, its next message, its progress events.

Every commit is one optimistic transaction on the replay's record. It goes through only if the
record still names the driver's (generation, step) and the cursor the driver's group started
from; otherwise another driver (a redelivered message) or a control moved it on, and the driver
stops (`Superseded`). A group's candles are merged in the commit that moves the cursor past it,
so they count each tick once whoever ran the group and however often; calc's own writes are
exactly-once by their done-markers (named after that same cursor).

A control the API recorded (`wanted`) is settled here: the commit that finds `paused` or
`cancelled` wanted puts the replay in that state and sends no continuation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from redis import Redis, WatchError
from redis.client import Pipeline

from backend.bus import ledger
from backend.bus.enqueue import queue_message
from backend.bus.keys import REPLAY_ACTOR, REPLAY_QUEUE, Keys
from backend.bus.realtime import Ring
from backend.bus.replays import driver_message_items, progress_event
from backend.core.candles import Candle, from_ticks, merge
from backend.core.replay import TERMINAL_STATES, RateMark, ReplayRecord
from backend.core.ticks import Tick

CANDLE_US = 60_000_000
PROGRESS_EVERY_US = 1_000_000  # at most one `replay.progress` per second while it runs


class Superseded(Exception):
    """The record moved on without this driver: a duplicate message, or a resumed generation."""


class ReplayProgressStore:
    def __init__(self, redis: Redis, keys: Keys, ring: Ring, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ring = ring
        self._ttl_s = ttl_s

    def live_calc_backlog(self) -> int:
        """Live ticks waiting for calc (the live stats hash): a replay gives way while it grows."""
        fields = (ledger.INGEST_ACCEPTED, ledger.CALC_TICKS, ledger.CALC_DEAD_TICKS)
        values = self._redis.hmget(self._keys.stats, fields)
        counters = {f: float(v) for f, v in zip(fields, values, strict=True) if v is not None}
        return ledger.calc_backlog_ticks(counters)

    def load(self, replay_id: str) -> ReplayRecord | None:
        raw = self._redis.get(self._keys.replay_record(replay_id))
        return ReplayRecord.model_validate_json(raw) if raw else None

    def begin(self, replay_id: str, generation: int, step: int, now_us: int) -> ReplayRecord | None:
        """Take the replay for this message's slice: the record, running; None when the message
        is stale (another generation or step, a paused or finished replay) or a control it finds
        settles the replay instead."""
        key = self._keys.replay_record(replay_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    record = ReplayRecord.model_validate_json(raw)
                    stale = (record.generation, record.step) != (generation, step)
                    if stale or record.state in TERMINAL_STATES or record.state == "paused":
                        pipe.unwatch()
                        return None
                    update: dict[str, Any] = {"state": "running"}
                    if record.started_us is None:
                        update["started_us"] = now_us
                    if record.state != "running" or record.rate_since is None:
                        mark = RateMark(applied=record.ticks_applied, wall_us=now_us)
                        update["rate_since"] = mark
                    if record.wanted in ("paused", "cancelled"):
                        update = self._settled(record, record.wanted, now_us)
                    new = record.model_copy(update=update)
                    pipe.multi()
                    self._write(pipe, new, now_us, announce=True)
                    self._expire_namespace(pipe, new)
                    pipe.execute()
                    return new if new.state == "running" else None
                except WatchError:
                    continue

    def commit(
        self,
        mine: ReplayRecord,
        update: dict[str, Any],
        *,
        group: Sequence[Tick] = (),
        done_marker: str | None = None,
        send_next: bool = False,
        now_us: int,
    ) -> ReplayRecord:
        """Apply `update` to the record `mine` was read as, with `group`'s candles, and (when
        `send_next`) the continuation message for step + 1, in one transaction; the new record.
        A control found wanted is settled in the same commit (no continuation then).

        `done_marker`: calc's marker of the group, deleted here: once the cursor is past the
        group no run can apply it again, and a day replayed at speed 1 would otherwise keep a
        marker per 50 ms for REPLAY_TTL."""
        key = self._keys.replay_record(mine.id)
        replay_keys = self._keys.for_replay(mine.id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    current = ReplayRecord.model_validate_json(raw) if raw else None
                    if current is None or (current.generation, current.step, current.cursor) != (
                        mine.generation, mine.step, mine.cursor,
                    ):  # fmt: skip
                        pipe.unwatch()
                        raise Superseded(mine.id)
                    candles = self._merged_candles(pipe, replay_keys, group)
                    new = current.model_copy(update=update)
                    if new.state == "running" and current.wanted in ("paused", "cancelled"):
                        new = new.model_copy(update=self._settled(new, current.wanted, now_us))
                    continues = send_next and new.state == "running"
                    if continues:
                        new = new.model_copy(update={"step": new.step + 1})
                    changed = new.state != current.state
                    announce = changed or now_us - current.last_event_us >= PROGRESS_EVERY_US
                    pipe.multi()
                    for symbol, by_bucket in candles.items():
                        pipe.hset(
                            replay_keys.candles_1m(symbol),
                            mapping={str(b): c.to_record() for b, c in by_bucket.items()},
                        )
                    self._write(pipe, new, now_us, announce=announce)
                    if done_marker is not None:
                        pipe.delete(replay_keys.calc_done(done_marker))
                    if continues:
                        queue_message(
                            pipe, self._keys, REPLAY_QUEUE, REPLAY_ACTOR, driver_message_items(new)
                        )
                    if changed:
                        self._expire_namespace(pipe, new)
                    pipe.execute()
                    return new
                except WatchError:
                    continue

    @staticmethod
    def _settled(record: ReplayRecord, wanted: str, now_us: int) -> dict[str, Any]:
        if wanted == "cancelled":
            return {"state": "cancelled", "wanted": None, "finished_us": now_us}
        return {"state": "paused", "wanted": None, "anchor": None, "rate_since": None}

    def _write(self, pipe: Pipeline, record: ReplayRecord, now_us: int, *, announce: bool) -> None:
        if announce:
            record = record.model_copy(update={"last_event_us": now_us})
            self._ring.queue_append(pipe, progress_event(record, now_us))
        pipe.set(self._keys.replay_record(record.id), record.model_dump_json(), ex=self._ttl_s)

    def _expire_namespace(self, pipe: Pipeline, record: ReplayRecord) -> None:
        """Every key of the replay's namespace lives REPLAY_TTL past its last state change (or
        slice): an abandoned replay cleans up after itself."""
        for key in self._keys.for_replay(record.id).replay_namespace_keys(record.symbols):
            pipe.expire(key, self._ttl_s)

    @staticmethod
    def _merged_candles(
        pipe: Pipeline, keys: Keys, group: Sequence[Tick]
    ) -> dict[str, dict[int, Candle]]:
        """The 1 m candles `group` touches, merged with what is stored (read under WATCH)."""
        by_symbol: dict[str, list[Tick]] = defaultdict(list)
        for tick in group:
            by_symbol[tick.symbol].append(tick)
        out: dict[str, dict[int, Candle]] = {}
        for symbol, ticks in by_symbol.items():
            fresh = from_ticks(ticks, CANDLE_US)
            buckets = sorted(fresh)
            stored = pipe.hmget(keys.candles_1m(symbol), [str(b) for b in buckets])
            out[symbol] = {
                b: fresh[b] if raw is None else merge(Candle.from_record(raw), fresh[b])
                for b, raw in zip(buckets, stored, strict=True)
            }
        return out
