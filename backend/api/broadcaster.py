"""One Redis subscription per API process, fanned out to SSE clients through bounded queues.

A client that does not read loses its OLDEST events (counted, and it is told how many), so one
slow browser never stalls the subscription or any other client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from backend.bus.event_bus import EventBus

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscriber:
    symbols: frozenset[str] | None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    dropped: int = 0
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, raw: bytes) -> bool:
        """Queue an event; if full, drop the oldest. Returns False when something was dropped."""
        self._ready.set()
        try:
            self.queue.put_nowait(raw)
            return True
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(raw)
            self.dropped += 1
            return False

    async def next(self, timeout: float) -> tuple[int, bytes] | None:
        """The oldest queued event and the drop count just before it; None after `timeout`.

        Both are read in one step (no await between): every drop so far removed an event older
        than this one, so a `missed` report sent right before it sits exactly where the gap is.
        """
        while self.queue.empty():
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self.dropped, self.queue.get_nowait()


@dataclass
class Broadcaster:
    events: EventBus
    on_drop: Callable[[], None] = lambda: None
    subscribers: set[Subscriber] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sse-broadcaster")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, symbols: frozenset[str] | None) -> Subscriber:
        sub = Subscriber(symbols)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish_local(self, raw: bytes, symbol: str | None) -> None:
        for sub in list(self.subscribers):
            wanted = sub.symbols is None or symbol in sub.symbols
            if wanted and not sub.offer(raw):
                self.on_drop()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self.events.subscribe() as payloads:
                    backoff = 0.5
                    async for raw in payloads:
                        try:
                            symbol = orjson.loads(raw).get("symbol")
                        except (orjson.JSONDecodeError, AttributeError):
                            continue
                        self.publish_local(raw, symbol)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broadcaster: subscription lost (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
