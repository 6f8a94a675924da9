"""Simulated wall-clock time for asyncio code that takes a `clock` and a `sleep`.

`sleep(d)` parks the caller until the test `advance()`s the clock past its wake time; the test
synchronises on `until_asleep(n)` (n callers parked again), never on real time.
"""

from __future__ import annotations

import asyncio


class SimulatedTime:
    def __init__(self, start: float) -> None:
        self.now = start
        self.delays: list[float] = []  # every delay asked for, in order
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Condition()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + delay, future)
        self._sleepers.append(entry)
        async with self._changed:
            self._changed.notify_all()
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def asleep(self) -> int:
        return sum(1 for _, future in self._sleepers if not future.done())

    async def until_asleep(self, count: int, timeout: float = 10.0) -> None:
        """Wait (on the loop, not the clock) until `count` callers are parked in `sleep`."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.asleep >= count), timeout)

    def advance(self, seconds: float) -> None:
        """Move the clock and wake every sleeper now due."""
        self.now += seconds
        for wake_at, future in list(self._sleepers):
            if wake_at <= self.now and not future.done():
                future.set_result(None)
