"""Replays on the API's side: create a replay, read its record and results, pause/resume/cancel.

A replay's record (`ReplayRecord` JSON) is the one place its progress and its wanted state meet:
the API changes it only under WATCH, and only the way `apply_control` says, so a control that
races the driver's commit is simply applied to the driver's newer record. Creating a replay and
sending its first driver message are one MULTI, as is a resume and its message: a replay is never
left queued with no message to drive it.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from backend.bus.enqueue import queue_message
from backend.bus.keys import REPLAY_ACTOR, REPLAY_QUEUE, Keys
from backend.bus.realtime import Outgoing, Ring
from backend.core.candles import Candle
from backend.core.replay import (
    REPLAY_PROGRESS,
    Control,
    ReplayProgress,
    ReplayRecord,
    apply_control,
)


def driver_message_items(record: ReplayRecord) -> list[bytes]:
    """The driver message's argument: which replay, and the (generation, step) it may drive."""
    return [orjson.dumps(record.id), orjson.dumps(record.generation), orjson.dumps(record.step)]


def progress_event(record: ReplayRecord, now_us: int) -> Outgoing:
    payload = ReplayProgress(replay=record.status(now_us)).model_dump_json(by_alias=True)
    return Outgoing(REPLAY_PROGRESS, None, payload.encode())


class ReplayNotFound(LookupError):
    pass


class Replays:
    """Async access for the API."""

    def __init__(self, redis: Redis, keys: Keys, ring: Ring, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ring = ring
        self._ttl_s = ttl_s

    async def create(self, record: ReplayRecord) -> None:
        key = self._keys.replay_record(record.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, record.model_dump_json(), ex=self._ttl_s)
            pipe.zadd(self._keys.replays, {record.id: record.created_us // 1000})
            self._send(pipe, record)
            self._ring.queue_append(pipe, progress_event(record, record.created_us))
            await pipe.execute()

    def _send(self, pipe: Any, record: ReplayRecord) -> None:
        queue_message(pipe, self._keys, REPLAY_QUEUE, REPLAY_ACTOR, driver_message_items(record))

    async def get(self, replay_id: str) -> ReplayRecord | None:
        raw = await self._redis.get(self._keys.replay_record(replay_id))
        return ReplayRecord.model_validate_json(raw) if raw else None

    async def list(self, limit: int) -> list[ReplayRecord]:
        """Newest first; ids whose record expired are dropped from the index on the way."""
        ids = [i.decode() for i in await self._redis.zrevrange(self._keys.replays, 0, limit - 1)]
        if not ids:
            return []
        raws = await self._redis.mget([self._keys.replay_record(i) for i in ids])
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            await self._redis.zrem(self._keys.replays, *gone)
        return [ReplayRecord.model_validate_json(raw) for raw in raws if raw is not None]

    async def control(self, replay_id: str, control: Control, now_us: int) -> ReplayRecord:
        """Apply `control`; the record after it. Raises ReplayNotFound, or ControlError when
        the replay's state does not allow it."""
        key = self._keys.replay_record(replay_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise ReplayNotFound(replay_id)
                    record, send = apply_control(
                        ReplayRecord.model_validate_json(raw), control, now_us
                    )
                    pipe.multi()
                    pipe.set(key, record.model_dump_json(), keepttl=True)
                    if send:
                        self._send(pipe, record)
                    if record.state != "running":  # a running driver reports its own settling
                        self._ring.queue_append(pipe, progress_event(record, now_us))
                    await pipe.execute()
                    return record
                except WatchError:
                    continue

    # --- results ------------------------------------------------------------------------------
    async def view(self, replay_id: str, symbol: str) -> bytes | None:
        return await self._redis.get(self._keys.for_replay(replay_id).view(symbol))

    async def state(self, replay_id: str, symbol: str) -> bytes | None:
        return await self._redis.get(self._keys.for_replay(replay_id).state(symbol))

    async def candles(self, replay_id: str, symbol: str) -> list[Candle]:
        """The replay's 1 m candles of `symbol`, oldest first."""
        raw = await self._redis.hvals(self._keys.for_replay(replay_id).candles_1m(symbol))
        return sorted((Candle.from_record(r) for r in raw), key=lambda c: c.bucket_us)

    async def firings(self, replay_id: str) -> list[bytes]:
        return await self._redis.lrange(self._keys.for_replay(replay_id).sandbox_firings, 0, -1)
