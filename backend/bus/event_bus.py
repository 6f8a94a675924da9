"""Publishing on the bus: the API's events (fast-path `tick.received`, feeder config and status)
appended to the realtime ring (`backend.bus.realtime`).

Payloads are built by `backend.bus.events`; this module only moves them. Readers never subscribe
here: the realtime gateway reads the ring, from where a client left off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis as AsyncRedis

from backend.bus.realtime import Outgoing, Ring


class EventBus:
    """The API's writes to the realtime ring."""

    def __init__(self, redis_client: AsyncRedis, ring: Ring) -> None:
        self._redis = redis_client
        self.ring = ring

    async def publish_many(self, events: Iterable[Outgoing]) -> None:
        """All of them in one round trip (no transaction: each event stands alone)."""
        await self.ring.append_many(self._redis, events)

    def queue_publish(self, pipe: Any, event: Outgoing) -> None:
        """Queue the append on a caller's MULTI, so the event exists only if the write does."""
        self.ring.queue_append(pipe, event)
