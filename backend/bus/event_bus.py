"""The realtime channel's mechanics: publish events, subscribe to them (async and sync).

Payloads are bytes built by `backend.bus.events`; this module only moves them. The API publishes
and fans out through one async subscription per process; the UI's live feed holds one sync
subscription per Streamlit server process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis


class EventBus:
    """Publishing on the realtime channel, and the API's async subscription to it."""

    def __init__(self, redis_client: AsyncRedis, channel: str) -> None:
        self._redis = redis_client
        self.channel = channel

    async def publish(self, payload: bytes) -> None:
        await self._redis.publish(self.channel, payload)

    async def publish_many(self, payloads: Iterable[bytes]) -> None:
        """All of them in one round trip (no transaction: each event stands alone)."""
        payloads = list(payloads)
        if not payloads:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(self.channel, payload)
            await pipe.execute()

    def queue_publish(self, pipe: Any, payload: bytes) -> None:
        """Queue the publication on a caller's MULTI, so it happens only if the write does."""
        pipe.publish(self.channel, payload)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[bytes]]:
        """A live subscription: iterate it for each event's payload. Raises on a lost server."""
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)

            async def payloads() -> AsyncIterator[bytes]:
                async for message in pubsub.listen():
                    data = message["data"]
                    if isinstance(data, bytes | bytearray):
                        yield bytes(data)

            yield payloads()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a sync subscription received: the subscription confirmed, or one event."""

    subscribed: bool
    payload: bytes | None = None


class SyncSubscription:
    """One blocking subscription to `channel` (the UI's live feed thread owns it)."""

    def __init__(self, url: str, channel: str, **client_options: Any) -> None:
        self._client = redis.Redis.from_url(url, **client_options)
        self._pubsub: Any = None
        self._channel = channel

    def open(self) -> SyncSubscription:
        self._pubsub = self._client.pubsub()
        self._pubsub.subscribe(self._channel)
        return self

    def get(self, timeout: float) -> Delivery | None:
        """The next confirmation or event, None after `timeout` s. Raises on a lost server."""
        message = self._pubsub.get_message(timeout=timeout)
        if message is None:
            return None
        if message.get("type") == "subscribe":
            return Delivery(subscribed=True)
        if message.get("type") == "message":
            return Delivery(subscribed=False, payload=message["data"])
        return None

    def resources(self) -> tuple[Any, Any]:
        """The pub/sub handle and the client, for the caller to close (either may be broken)."""
        return self._pubsub, self._client
