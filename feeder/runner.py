"""The pacing loop: the current target TPS of payloads, handed to delivery without waiting.

Pacing follows a monotonic schedule (payload i is due at anchor + i / TPS), re-anchored whenever
the target changes (config, pause, burst start or end), so wall-clock jumps neither speed up
nor stall the feed; each tick's `ts` is wall-clock epoch ms when it is made. Delivery never
blocks the loop (it buffers), so a slow API shows up as `buffered` / `dropped`, not as a
slower simulated market.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from backend.core.feeder_config import FeederConfig, FeederStatus
from backend.settings import Settings
from feeder.client import TickClient
from feeder.clock import SYSTEM_CLOCK, Clock, sleep_until_woken
from feeder.control import Control, ControlClient, RateMeter, config_from_settings
from feeder.delivery import MAX_IN_FLIGHT, Delivery, Recorder
from feeder.faults import FaultyFeed, Rates
from feeder.outcomes import Counters
from feeder.simulator import Simulator

log = logging.getLogger(__name__)

SUMMARY_INTERVAL_S = 10.0
DRAIN_TIMEOUT_S = 30.0
MEASURE_INTERVAL_S = 0.25
ACHIEVED_WINDOW_S = 2.0
LAST_ERROR_TTL_S = 60.0  # a delivery error older than this is no longer reported
# When the loop falls further behind schedule than this (in seconds of ticks), it drops the
# backlog instead of bursting it out all at once.
MAX_LAG_S = 1.0


class Runner:
    """Feeds `feed` payloads into `delivery` at the config's TPS until `stop()` is called.

    `apply()` swaps the config at any time. `stop()` once: stop making ticks, send the held
    ones and what is buffered (up to `drain_timeout`, less if the API stops answering);
    `stop()` again: abandon them at once. Pacing, tick timestamps, bursts and the achieved-rate
    samples all read `clock`, so a test can run the loop on simulated time.
    """

    def __init__(
        self,
        feed: FaultyFeed,
        delivery: Delivery,
        config: FeederConfig,
        *,
        feeder_id: str = "feeder",
        summary_interval: float = SUMMARY_INTERVAL_S,
        drain_timeout: float = DRAIN_TIMEOUT_S,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.feed = feed
        self.delivery = delivery
        self.feeder_id = feeder_id
        self.summary_interval = summary_interval
        self.drain_timeout = drain_timeout
        self.clock = clock
        self.meter = RateMeter(ACHIEVED_WINDOW_S)
        self.skipped = 0  # payloads not made because the loop fell more than MAX_LAG_S behind
        self._skip_logged_at = -float("inf")
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._wake = asyncio.Event()  # config changed or stop asked for
        self.config = config
        self.apply(config)

    @property
    def counters(self) -> Counters:
        return self.delivery.counters

    def apply(self, config: FeederConfig) -> None:
        """Switch to `config` now: universe, rates and mode at once, TPS at the next tick."""
        self.feed.simulator.set_universe(config.symbols, config.sources)
        self.feed.rates = Rates.from_config(config)
        self.delivery.mode = config.mode
        self.config = config
        self._wake.set()

    def target_tps(self) -> float:
        return self.config.effective_tps(self.clock.now())

    def status(self) -> FeederStatus:
        c = self.counters
        client = self.delivery.client
        recent = client.last_error_at is not None and (  # the client stamps real time
            time.monotonic() - client.last_error_at < LAST_ERROR_TTL_S
        )
        return FeederStatus(
            feeder_id=self.feeder_id,
            config_version=self.config.version,
            running=self.config.running,
            sent=c.sent,
            accepted=c.accepted,
            duplicates=c.duplicates,
            conflicts=c.conflicts,
            rejected=c.rejected + c.bad_rejected,  # as the API counted them; bad_* in the logs
            retries=c.retries,
            dropped=c.dropped,
            buffered=self.delivery.buffered,
            target_tps=self.target_tps(),
            achieved_tps=round(self.meter.rate(), 2),
            last_error=(client.last_error or "")[:500] if recent else None,
        )

    def stop(self) -> None:
        """Ask for a graceful stop; a second call abandons what is still unsent."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()
        self._wake.set()

    async def run(self) -> Counters:
        """Run until `stop()`; returns the final counters."""
        self.delivery.start()
        measure = asyncio.create_task(self._measure())
        try:
            log.info(
                "feeding %d symbols x %d sources at %g/s, mode=%s (run_id=%s)",
                len(self.config.symbols),
                len(self.config.sources),
                self.target_tps(),
                self.config.mode,
                self.feed.simulator.run_id,
            )
            await self._pace()
            for emission in self.feed.flush():  # late ticks and resends still held back
                self.delivery.submit(emission.payload, bad=emission.bad)
            await self._drain()
        finally:
            measure.cancel()
            await asyncio.gather(measure, return_exceptions=True)
        log.info("feeder stopped: %s skipped=%d", self.counters.summary(), self.skipped)
        return self.counters.snapshot()

    async def _pace(self) -> None:
        anchor, issued, tps = self.clock.monotonic(), 0, -1.0
        while not self._stop.is_set():
            target = self.target_tps()
            if target != tps:  # re-anchor: the new rate starts now
                anchor, issued, tps = self.clock.monotonic(), 0, target
            if tps <= 0:
                await self._sleep(0.25)  # paused: wake on a config change or stop
                continue
            now = self.clock.monotonic()
            due = int((now - anchor) * tps) + 1  # payload 0 is due at once
            if anchor + due / tps <= now:  # rounding: by the schedule's own sum, one more is due
                due += 1
            if due - issued > max(1.0, tps * MAX_LAG_S):
                self._skip(due - issued - 1)
                anchor, issued, due = now - issued / tps, issued, issued + 1
            while issued < due:
                emission = self.feed.next(self.clock.wall_ms())
                if emission is not None:
                    self.delivery.submit(emission.payload, bad=emission.bad)
                issued += 1
            delay = anchor + issued / tps - self.clock.monotonic()
            if delay > 0:
                await self._sleep(delay)
            else:
                await asyncio.sleep(0)  # let responses be processed between bursts

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by a config change or a stop."""
        self._wake.clear()
        await sleep_until_woken(self.clock, seconds, self._wake)

    def _skip(self, dropped: int) -> None:
        """Drop a backlog; warn now and then."""
        self.skipped += dropped
        now = self.clock.monotonic()
        if now - self._skip_logged_at >= self.summary_interval:
            log.warning("feeder behind schedule (CPU-bound?): skipped %d so far", self.skipped)
            self._skip_logged_at = now

    async def _drain(self) -> None:
        if self._force.is_set():
            await self.delivery.abort()
            return
        if self.delivery.buffered:
            log.info("stopping: sending %d buffered ticks", self.delivery.buffered)
        closing = asyncio.create_task(self.delivery.close(self.drain_timeout))
        forced = asyncio.create_task(self._force.wait())
        await asyncio.wait({closing, forced}, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if not closing.done():
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)
            await self.delivery.abort()

    async def _measure(self) -> None:
        """Sample the answered count for achieved_tps; log a summary now and then."""
        last_summary = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            self.meter.sample(now, self.counters.answered)
            if now - last_summary >= self.summary_interval:
                last_summary = now
                log.info(
                    "%s buffered=%d skipped=%d target=%.1f/s achieved=%.1f/s",
                    self.counters.summary(),
                    self.delivery.buffered,
                    self.skipped,
                    self.target_tps(),
                    self.meter.rate(),
                )
            await self.clock.sleep(MEASURE_INTERVAL_S)


def build_runner(settings: Settings, config: FeederConfig | None = None, **kwargs: Any) -> Runner:
    """A runner wired from `settings`; SEED (when set) makes the payload sequence reproducible.

    The client retries without limit (the buffer bounds what an outage can cost), with short
    backoff so delivery resumes within ~2 s of the API coming back.
    """
    config = config or config_from_settings(settings)
    rng = random.Random(settings.seed)
    simulator = Simulator(config.symbols, config.sources, rng)
    feed = FaultyFeed(simulator, random.Random(rng.getrandbits(64)))
    client = TickClient(
        settings,
        max_connections=MAX_IN_FLIGHT,
        max_attempts=None,
        max_retry_time=None,
        backoff_max=2.0,
    )
    recorder = Recorder(settings.feeder_record_path) if settings.feeder_record_path else None
    delivery = Delivery(client, mode=config.mode, recorder=recorder)
    return Runner(feed, delivery, config, feeder_id=settings.feeder_id, **kwargs)


async def run_feeder(
    settings: Settings,
    runner_ready: Callable[[Runner], None] | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> Counters:
    """Build everything from `settings`, run with remote control until stopped.

    `runner_ready` receives the runner before it starts, so the caller can wire signals to
    `Runner.stop` (or, in-process, stop it or `apply` a config directly). Pacing and both
    control cadences run on `clock`.
    """
    runner = build_runner(settings, clock=clock)
    control_client = ControlClient(settings)
    control = Control(
        control_client,
        runner.apply,
        runner.status,
        status_interval=settings.status_interval,
        clock=clock,
    )
    if runner_ready is not None:
        runner_ready(runner)
    control_task = asyncio.create_task(control.run(), name="feeder-control")
    try:
        counters = await runner.run()
    finally:
        control_task.cancel()
        await asyncio.gather(control_task, return_exceptions=True)
        with contextlib.suppress(Exception):  # best effort: the final counters
            await control.report_once()
        await control_client.aclose()
        await runner.delivery.client.aclose()
        if runner.delivery.recorder is not None:
            runner.delivery.recorder.write_summary(runner.counters)
            runner.delivery.recorder.close()
    return counters
