"""A ring in memory with `RingReader`'s read methods: the hub and the session without Redis."""

from __future__ import annotations

import asyncio

from backend.bus.realtime import Bounds, Entry, Tail
from backend.core.stream_ids import StreamId


class FakeReader:
    def __init__(self, entries: list[Entry] | None = None, views: dict[str, bytes] | None = None):
        self.entries: list[Entry] = list(entries or [])
        self.last_generated: StreamId = self.entries[-1].id if self.entries else (0, 0)
        self.views = dict(views or {})
        self.appended = asyncio.Event()
        self.fail_next_read: Exception | None = None

    def append(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.last_generated = entry.id
        self.appended.set()

    def trim_before(self, first: StreamId) -> None:
        self.entries = [e for e in self.entries if e.id >= first]

    async def tail(self) -> Tail:
        return Tail(self.last_generated, dict(self.views))

    async def read_after(self, after: StreamId, count: int) -> tuple[Bounds, list[Entry]]:
        first = self.entries[0].id if self.entries else None
        later = [e for e in self.entries if e.id > after][:count]
        return Bounds(first, self.last_generated), later

    async def read_live(self, after: StreamId, count: int, block_ms: int) -> list[Entry]:
        while True:
            if self.fail_next_read is not None:
                error, self.fail_next_read = self.fail_next_read, None
                raise error
            later = [e for e in self.entries if e.id > after][:count]
            if later:
                return later
            self.appended.clear()
            await self.appended.wait()

    async def trim(self, retention_s: float) -> int:
        return 0
