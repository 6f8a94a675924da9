"""The feeder control plane's Redis: the desired config, each feeder's last report, and the
`feeder.config` / `feeder.status` announcements that go with them.

A config change is a compare-and-set (WATCH the config, write it in MULTI with its event): two
operators changing different fields at once both land, one merged into the other's result. Old
reports are pruned at most once per PRUNE_EVERY_S across replicas, and only if unchanged since
they were read, so a feeder that reports meanwhile keeps its fresh entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import WatchError

from backend.bus import events
from backend.bus.event_bus import EventBus
from backend.bus.keys import Keys
from backend.bus.lua import hdel_if_unchanged
from backend.core.events import FeederStatusReported
from backend.core.feeder_config import FeederConfig
from backend.core.feeder_liveness import FORGET_AFTER_S, decode_record, received_us

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 60  # at most one prune pass per minute, whichever API replica gets there first


class ConfigContended(Exception):
    """Every compare-and-set attempt lost to a concurrent change."""


class FeederRegistry:
    def __init__(self, redis: Redis, keys: Keys, events: EventBus) -> None:
        self._redis = redis
        self._keys = keys
        self._events = events

    # --- config ------------------------------------------------------------------------------
    async def config(self) -> bytes | None:
        """The stored config (JSON), None before the first change."""
        return await self._redis.get(self._keys.feeder_config)

    async def change_config(
        self, change: Callable[[bytes | None], FeederConfig], *, max_attempts: int
    ) -> FeederConfig:
        """Store `change(current)` if nobody changed the config meanwhile, else retry on the new
        current; publish `feeder.config` with it. Raises ConfigContended after `max_attempts`."""
        key = self._keys.feeder_config
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(max_attempts):
                try:
                    await pipe.watch(key)
                    new = change(await pipe.get(key))
                    event = events.feeder_config_changed(new)
                    pipe.multi()
                    pipe.set(key, new.model_dump_json())
                    self._events.queue_publish(pipe, event)
                    await pipe.execute()
                    return new
                except WatchError:
                    continue  # another change won this round: apply ours to its result
        raise ConfigContended

    # --- status ------------------------------------------------------------------------------
    async def post_status(self, reported: FeederStatusReported, *, now_us: int) -> None:
        """Store a feeder's report (with `received_at`), publish `feeder.status`, and prune
        forgotten feeders when this replica's turn has come."""
        record = reported.model_dump_json(exclude={"type"})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.feeder_status, reported.feeder_id, record)
            self._events.queue_publish(pipe, events.outgoing(reported))
            pipe.set(self._keys.feeder_status_prune, b"1", nx=True, ex=PRUNE_EVERY_S)
            *_, prune_due = await pipe.execute()
        if prune_due:
            await self.prune(now_us)

    async def statuses(self) -> dict[bytes, bytes]:
        """feeder_id -> its stored report (JSON), for every feeder not yet pruned."""
        return await self._redis.hgetall(self._keys.feeder_status)

    async def prune(self, now_us: int) -> int:
        """Forget feeders silent for over FORGET_AFTER_S (and unreadable entries)."""
        cutoff_us = now_us - int(FORGET_AFTER_S * 1_000_000)
        stale: dict[bytes, bytes] = {}
        for feeder_id, raw in (await self.statuses()).items():
            received = received_us(decode_record(raw))
            if received is None or received < cutoff_us:
                stale[feeder_id] = raw
        if not stale:
            return 0
        removed = await hdel_if_unchanged(self._redis, key=self._keys.feeder_status, expected=stale)
        log.info("feeder status: pruned %s silent feeder(s)", removed)
        return removed
