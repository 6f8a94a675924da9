"""Simulated time for asyncio code that takes a clock and a sleeper.

`sleep(d)` parks the caller until the test `advance()`s the clock past its wake time; the test
synchronises on `until_asleep(n)` (n callers parked again), never on real time. `run_until(t)`
jumps from wake time to wake time, so a loop paced on this clock runs exactly as it would on
an idle machine, however busy the real one is. `SimulatedClock` presents it as the feeder's
`Clock` (monotonic, wall ms, aware UTC datetime and sleep, all from the same `now`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime


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

    @property
    def calls(self) -> int:
        """How many times `sleep` was called so far."""
        return len(self.delays)

    @property
    def next_wake(self) -> float | None:
        """When the earliest parked caller is due, or None when nobody is parked."""
        due = [wake_at for wake_at, future in self._sleepers if not future.done()]
        return min(due, default=None)

    async def until_asleep(self, count: int, timeout: float = 10.0) -> None:
        """Wait (on the loop, not the clock) until `count` callers are parked in `sleep`."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.asleep >= count), timeout)

    async def until_calls(self, count: int, timeout: float = 10.0) -> None:
        """Wait (on the loop) until `sleep` has been called `count` times in all."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.calls >= count), timeout)

    def advance(self, seconds: float) -> None:
        """Move the clock and wake every sleeper now due."""
        self.advance_to(self.now + seconds)

    def advance_to(self, when: float) -> None:
        """Set the clock to `when` (never backwards) and wake every sleeper now due."""
        self.now = max(self.now, when)
        for wake_at, future in list(self._sleepers):
            if wake_at <= self.now and not future.done():
                future.set_result(None)

    async def run_until(
        self,
        when: float,
        sleepers: int,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Advance to `when` one wake time at a time; after each, wait until `sleepers` callers
        are parked again (and `settle()`, if given), so every step sees the loops caught up."""
        await self.until_asleep(sleepers)
        while (wake := self.next_wake) is not None and wake <= when:
            self.advance_to(wake)
            await self.until_asleep(sleepers)
            if settle is not None:
                await settle()
        self.advance_to(when)


class SimulatedClock:
    """The feeder's `Clock` on a `SimulatedTime` whose `now` is epoch seconds."""

    def __init__(self, time: SimulatedTime) -> None:
        self.time = time

    def monotonic(self) -> float:
        return self.time.now

    def wall_ms(self) -> int:
        return round(self.time.now * 1000)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time.now, UTC)

    async def sleep(self, seconds: float) -> None:
        await self.time.sleep(seconds)
