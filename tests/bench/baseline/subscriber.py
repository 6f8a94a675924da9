"""The baseline's per-client SSE queue: bounded, drop-oldest, with a count of what was dropped
(the design the product's API used before the realtime gateway: no ids, no resume)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


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
