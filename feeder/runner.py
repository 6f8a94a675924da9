"""The pacing loop: TPS ticks per second in total, with bounded concurrent requests.

Pacing follows a monotonic schedule (tick i is due at start + i / TPS) so wall-clock jumps do
not speed up or stall the feed; each tick's `ts` is wall-clock epoch ms at the moment it is made.
A cap on in-flight requests keeps one slow response from stalling the rest without letting a
dead API pile up unbounded work.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from backend.config import Settings
from feeder.client import Counters, TickClient
from feeder.simulator import Simulator

log = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 64
SUMMARY_INTERVAL_S = 10.0
DRAIN_TIMEOUT_S = 30.0
# When the loop falls further behind schedule than this (in seconds of ticks), it drops the
# backlog instead of bursting it out all at once.
MAX_LAG_S = 1.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Runner:
    """Feeds `simulator` ticks through `client` at `tps` until `stop()` is called.

    `stop()` once: stop making ticks, let in-flight requests finish (up to `drain_timeout`).
    `stop()` again: abandon the in-flight requests at once.
    """

    def __init__(
        self,
        simulator: Simulator,
        client: TickClient,
        *,
        tps: float,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        summary_interval: float = SUMMARY_INTERVAL_S,
        drain_timeout: float = DRAIN_TIMEOUT_S,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if tps < 0:
            raise ValueError("tps must be >= 0")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.simulator = simulator
        self.client = client
        self.tps = tps
        self.max_in_flight = max_in_flight
        self.summary_interval = summary_interval
        self.drain_timeout = drain_timeout
        self.monotonic = monotonic
        self.wall_ms = wall_ms
        self.skipped = 0  # ticks dropped because the loop fell more than MAX_LAG_S behind
        self._unlogged_skips = 0
        self._skip_logged_at = -float("inf")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._wake = asyncio.Event()  # set when a request finishes or a stop is asked for

    @property
    def counters(self) -> Counters:
        return self.client.counters

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def stop(self) -> None:
        """Ask for a graceful stop; a second call abandons in-flight requests."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()
        self._wake.set()

    async def run(self) -> Counters:
        """Run until `stop()`; returns the final counters."""
        reporter = asyncio.create_task(self._report_periodically())
        try:
            if self.tps <= 0:
                log.info("TPS=0: feeder idle until stopped")
                await self._stop.wait()
            else:
                log.info(
                    "feeding %s symbols x %s sources at %g ticks/s (run_id=%s)",
                    len(self.simulator.symbols),
                    len(self.simulator.sources),
                    self.tps,
                    self.simulator.run_id,
                )
                await self._pace()
            await self._drain()
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
        log.info("feeder stopped: %s skipped=%d", self.counters.summary(), self.skipped)
        return self.counters.snapshot()

    async def _pace(self) -> None:
        start = self.monotonic()
        issued = 0
        max_lag = max(1, int(self.tps * MAX_LAG_S))
        while not self._stop.is_set():
            due = int((self.monotonic() - start) * self.tps) + 1  # tick 0 is due at once
            if due - issued > max_lag:
                self._skip(due - issued - 1)
                start = self.monotonic() - issued / self.tps
                due = issued + 1
            while issued < due:
                if not await self._slot_free():
                    return
                self._launch(self.simulator.next_tick(self.wall_ms()))
                issued += 1
            delay = start + issued / self.tps - self.monotonic()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)  # let responses be processed between bursts

    def _skip(self, dropped: int) -> None:
        """Drop a backlog; warn now and then (during an API outage this happens every second)."""
        self.skipped += dropped
        self._unlogged_skips += dropped
        now = self.monotonic()
        if now - self._skip_logged_at >= self.summary_interval:
            log.warning(
                "feeder behind schedule (API slow or down?): skipped %d ticks", self._unlogged_skips
            )
            self._skip_logged_at, self._unlogged_skips = now, 0

    async def _slot_free(self) -> bool:
        """Wait for an in-flight slot; False if a stop was asked for meanwhile."""
        while len(self._tasks) >= self.max_in_flight and not self._stop.is_set():
            self._wake.clear()
            await self._wake.wait()
        return not self._stop.is_set()

    def _launch(self, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(payload))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def _deliver(self, payload: dict[str, Any]) -> None:
        try:
            await self.client.send(payload)
        except Exception:  # a bug must cost one tick, never the feed
            self.counters.errors += 1
            log.exception("unexpected error delivering %s", payload.get("event_id"))

    async def _drain(self) -> None:
        if self._tasks:
            log.info("stopping: waiting for %d in-flight requests", len(self._tasks))
        deadline = self.monotonic() + self.drain_timeout
        while self._tasks and not self._force.is_set():
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                break
        if self._tasks:
            pending = list(self._tasks)
            log.warning("abandoning %d in-flight requests", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _report_periodically(self) -> None:
        last = self.counters.snapshot()
        last_at = self.monotonic()
        while True:
            await asyncio.sleep(self.summary_interval)
            now, current = self.monotonic(), self.counters.snapshot()
            rate = (current.sent - last.sent) / max(now - last_at, 1e-9)
            log.info(
                "%s skipped=%d in_flight=%d rate=%.1f/s",
                current.summary(),
                self.skipped,
                self.in_flight,
                rate,
            )
            last, last_at = current, now


def build_simulator(settings: Settings) -> Simulator:
    """The simulator for these settings; SEED (when set) makes the run reproducible."""
    return Simulator(settings.symbols, settings.sources, random.Random(settings.seed))


async def run_feeder(
    settings: Settings, runner_ready: Callable[[Runner], None] | None = None
) -> Counters:
    """Build client, simulator and runner from `settings` and run until stopped.

    `runner_ready` receives the runner before it starts, so the caller can wire signals to
    `Runner.stop`.
    """
    async with TickClient(settings, max_connections=DEFAULT_MAX_IN_FLIGHT) as client:
        runner = Runner(build_simulator(settings), client, tps=settings.tps)
        if runner_ready is not None:
            runner_ready(runner)
        return await runner.run()
