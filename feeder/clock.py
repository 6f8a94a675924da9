"""Time as an input: the feeder's loops read the time and sleep through a `Clock`.

Production uses `SYSTEM_CLOCK` (the monotonic clock for pacing, the wall clock for tick
timestamps and burst ends, `asyncio.sleep` to wait). Tests pass a simulated clock instead,
so rates, pauses, bursts and polling cadences are checked exactly, on simulated time, rather
than counted in real-time windows that a busy machine stretches.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: pacing and intervals."""
        ...

    def wall_ms(self) -> int:
        """Epoch milliseconds: the `ts` of a tick made now."""
        ...

    def now(self) -> datetime:
        """The aware UTC time: when a burst ends."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""
        ...


class SystemClock:
    """The real clocks and `asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


async def sleep_until_woken(clock: Clock, seconds: float, wake: asyncio.Event) -> None:
    """Sleep `seconds` on `clock`, cut short as soon as `wake` is set.

    The sleep runs on the injected clock (not `asyncio.timeout`, which is tied to the loop's
    own time), so a simulated clock can end it as well as a real one.
    """
    if wake.is_set():
        return
    sleeping = asyncio.ensure_future(clock.sleep(seconds))
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeping, woken):
            task.cancel()
        await asyncio.gather(sleeping, woken, return_exceptions=True)
