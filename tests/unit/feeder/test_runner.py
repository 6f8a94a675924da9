"""The pacing loop on simulated time, delivering to a real local HTTP server: follows the target
TPS exactly as the config changes (rate, pause, burst), stops cleanly, and accounts for every
payload it made.

The runner paces on a `SimulatedClock` that the test moves from one wake time to the next, so
each count below is exact: it is what the schedule says, however busy the machine is. The
HTTP side (delivery, the stub server) runs on real time, as in production.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from backend.core.feeder_config import Burst, FeederConfig, FeederStatus
from backend.settings import Settings
from feeder.client import TickClient
from feeder.delivery import Delivery
from feeder.faults import FaultyFeed
from feeder.outcomes import Counters
from feeder.runner import Runner, run_feeder
from feeder.simulator import Simulator
from tests.support.simulated_time import SimulatedClock, SimulatedTime
from tests.unit.feeder.stub_server import Reply, accept_batches, sequence, stub_server

CONFIG = FeederConfig(symbols=["BTCUSDT", "EURUSD"], sources=["a", "b"], tps=100)
START = 1_700_000_000.0  # simulated epoch seconds when the runner starts
RUNNER_SLEEPERS = 2  # the pacing loop and the achieved-rate sampler
T = TypeVar("T")


def answer(n: int, payload: Any) -> Reply:
    if isinstance(payload, list):
        return accept_batches(n, payload)
    return 200, {}, {"status": "accepted"}


class TimedDelivery(Delivery):
    """A `Delivery` that notes when (simulated seconds since START) each payload was made."""

    def __init__(self, client: TickClient, sim: SimulatedTime, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.sim = sim
        self.made: list[float] = []

    def submit(self, payload: dict[str, Any], *, bad: bool = False) -> None:
        self.made.append(self.sim.now - START)
        super().submit(payload, bad=bad)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait on the loop (real time) for something observable, e.g. the delivery to go idle."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


@dataclass
class Harness:
    sim: SimulatedTime
    runner: Runner
    delivery: TimedDelivery
    task: asyncio.Task[Counters] = field(init=False)

    def made_in(self, start: float, end: float) -> list[float]:
        """When the payloads made in [start, end) simulated seconds were made."""
        return [t for t in self.delivery.made if start <= t < end]

    async def run_until(self, at: float, *, settle: bool = False) -> None:
        """Run the simulated clock to `at` seconds after START; with `settle`, let every payload
        be answered before the clock moves on (so the achieved rate follows the schedule)."""
        await self.sim.run_until(START + at, RUNNER_SLEEPERS, self._idle if settle else None)

    async def apply(self, **changes: Any) -> None:
        """Apply a changed config now and wait until the pacing loop has taken it in."""
        calls = self.sim.calls
        self.runner.apply(self.runner.config.model_copy(update=changes))
        await self.sim.until_calls(calls + 1)
        await self.sim.until_asleep(RUNNER_SLEEPERS)

    async def stop(self) -> Counters:
        self.runner.stop()
        return await asyncio.wait_for(self.task, 30)

    async def _idle(self) -> None:
        await until(lambda: self.delivery.buffered == 0, "every payload answered")


def simulate(
    url: str,
    config: FeederConfig,
    script: Callable[[Harness], Awaitable[T]],
    *,
    max_in_flight: int = 64,
    drain_timeout: float = 30.0,
) -> T:
    """Start a runner on simulated time, let `script` steer it, and clean up."""

    async def go() -> T:
        sim = SimulatedTime(START)
        client = TickClient(
            Settings(target_url=url), max_attempts=None, max_retry_time=None, backoff_max=0.1
        )
        delivery = TimedDelivery(client, sim, max_in_flight=max_in_flight, batch_linger=0.005)
        feed = FaultyFeed(
            Simulator(config.symbols, config.sources, random.Random(1)), random.Random(2)
        )
        runner = Runner(
            feed, delivery, config, drain_timeout=drain_timeout, clock=SimulatedClock(sim)
        )
        harness = Harness(sim, runner, delivery)
        harness.task = asyncio.create_task(runner.run())
        try:
            return await script(harness)
        finally:
            if not harness.task.done():
                runner.stop()
                runner.stop()
                await asyncio.gather(harness.task, return_exceptions=True)
            await client.aclose()

    return asyncio.run(go())


def every(period: float, count: int, start: float = 0.0) -> Any:
    return pytest.approx([start + i * period for i in range(count)], abs=1e-6)


def test_paces_and_delivers_every_tick_once() -> None:
    async def script(h: Harness) -> tuple[Runner, Counters]:
        await h.run_until(0.995)  # payload 100 would be due at 1.0
        return h.runner, await h.stop()

    with stub_server(answer) as server:
        runner, counters = simulate(server.url, CONFIG, script)
    ids = [r.payload["event_id"] for r in server.requests]
    assert counters.sent == 100  # 1 s at 100/s, evenly spaced from the start
    assert runner.delivery.made == every(0.01, 100)  # type: ignore[attr-defined]
    assert counters.accepted == counters.sent == len(ids) == len(set(ids))
    assert counters.errors == counters.dropped == 0
    assert runner.feed.stats.emitted == counters.sent


def test_follows_a_tps_change_at_once() -> None:
    async def script(h: Harness) -> list[float]:
        await h.run_until(0.99)
        await h.apply(version=1, tps=400)
        await h.run_until(0.99 + 0.999)
        await h.stop()
        return h.delivery.made

    with stub_server(answer) as server:
        made = simulate(server.url, CONFIG.model_copy(update={"tps": 50}), script)
        assert server.requests
    before = [t for t in made if t < 0.99 - 1e-6]
    after = [t for t in made if t >= 0.99 - 1e-6]
    assert before == every(0.02, 50)  # 50/s for 0.99 s
    assert after == every(1 / 400, 400, start=0.99)  # 400/s from the change on, at once


def test_pause_stops_sending_and_resume_restarts() -> None:
    async def script(h: Harness) -> list[float]:
        await h.run_until(0.495)
        await h.apply(version=1, running=False)
        assert h.runner.target_tps() == 0 and h.runner.status().running is False
        await h.run_until(1.495)
        await h.apply(version=2, running=True)
        await h.run_until(1.99)
        await h.stop()
        return h.delivery.made

    with stub_server(answer) as server:
        made = simulate(server.url, CONFIG, script)
        assert server.requests
    assert [t for t in made if t < 0.495] == every(0.01, 50)
    assert [t for t in made if 0.495 <= t < 1.495 - 1e-6] == []  # paused: nothing made
    assert [t for t in made if t >= 1.495 - 1e-6] == every(0.01, 50, start=1.495)


def test_burst_multiplies_tps_until_it_ends() -> None:
    # 40/s x 5 = 200/s until 0.9975 s (between two burst payloads), then 40/s again.
    until = datetime.fromtimestamp(START, UTC) + timedelta(seconds=0.9975)
    config = CONFIG.model_copy(
        update={"tps": 40, "burst": Burst(multiplier=5, seconds=1, until=until)}
    )

    async def script(h: Harness) -> list[float]:
        assert h.runner.target_tps() == 200
        await h.run_until(1.99)
        assert h.runner.target_tps() == 40
        await h.stop()
        return h.delivery.made

    with stub_server(answer) as server:
        made = simulate(server.url, config, script)
        assert server.requests
    assert [t for t in made if t < 0.9975] == every(1 / 200, 200)
    assert [t for t in made if t >= 0.9975] == every(1 / 40, 40, start=1.0)


def test_tps_zero_idles_until_stopped() -> None:
    async def script(h: Harness) -> Counters:
        await h.run_until(0.3)
        assert not h.task.done()  # idling, not finished
        assert h.sim.delays[:1] == [0.25]  # waiting for a config change, not spinning
        return await h.stop()

    with stub_server(answer) as server:
        counters = simulate(server.url, CONFIG.model_copy(update={"tps": 0}), script)
    assert counters.sent == 0 and server.requests == []


def test_stop_sends_held_ticks_so_every_tick_made_is_delivered() -> None:
    config = CONFIG.model_copy(update={"tps": 300, "out_of_order_rate": 0.5, "gap_rate": 0.1})

    async def script(h: Harness) -> tuple[Runner, Counters]:
        await h.run_until(0.499)
        return h.runner, await h.stop()

    with stub_server(answer) as server:
        runner, counters = simulate(server.url, config, script)
    ids = [r.payload["event_id"] for r in server.requests]
    stats = runner.feed.stats
    assert len(ids) == len(set(ids)) == stats.generated - stats.gapped == counters.accepted
    assert runner.feed.held == 0


def test_slow_api_buffers_and_a_drain_timeout_counts_leftovers() -> None:
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def slow(_n: int, _payload: Any) -> Reply:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2)  # the API being slow (server side), not a test synchronisation
        with lock:
            in_flight[0] -= 1
        return 200, {}, {"status": "accepted"}

    async def script(h: Harness) -> tuple[Runner, Counters]:
        await h.run_until(0.999)
        return h.runner, await h.stop()

    with stub_server(slow) as server:
        runner, counters = simulate(
            server.url,
            CONFIG.model_copy(update={"tps": 200}),
            script,
            max_in_flight=4,
            drain_timeout=0.5,
        )
    assert peak[0] <= 4
    # The loop kept its pace (the API's slowness did not slow the market down)...
    assert runner.feed.stats.emitted == 200
    # ... and every payload made is accounted for: answered, or dropped at the stop.
    assert counters.answered + counters.dropped == runner.feed.stats.emitted
    assert (
        counters.dropped > 0
    )  # 200 made, at most 4 answered per 0.2 s: the drain could not finish
    # Requests cut off at the stop reached the server but count as dropped (never answered).
    assert counters.accepted <= len(server.requests) <= counters.accepted + 4


def test_second_stop_abandons_in_flight() -> None:
    release = threading.Event()

    def stuck(_n: int, _payload: Any) -> Reply:
        release.wait(30)  # answers only once the test is done: a first stop alone would wait
        return 200, {}, {"status": "accepted"}

    with stub_server(stuck) as server:

        async def script(h: Harness) -> Counters:
            await until(lambda: bool(server.requests), "a request in flight")
            h.runner.stop()
            h.runner.stop()
            return await asyncio.wait_for(h.task, 10)  # returns without the answer

        try:
            counters = simulate(server.url, CONFIG.model_copy(update={"tps": 50}), script)
        finally:
            release.set()
    assert counters.sent >= 1 and counters.accepted == 0 and counters.dropped >= 1


def test_status_reports_achieved_rate() -> None:
    async def script(h: Harness) -> FeederStatus:
        await h.run_until(2.599, settle=True)
        return h.runner.status()

    with stub_server(answer) as server:
        status = simulate(server.url, CONFIG.model_copy(update={"tps": 200, "version": 4}), script)
    assert status.config_version == 4 and status.running and status.target_tps == 200
    # Every payload answered before the clock moved on: the 2 s window saw 200/s, to within
    # the one payload a sample may take or miss at each end of the window.
    assert status.achieved_tps == pytest.approx(200, abs=1)
    assert status.sent == status.accepted == 520 and status.last_error is None
    assert 0 <= status.sent - status.accepted <= status.buffered  # the rest is in flight


def test_run_feeder_is_steered_by_the_remote_config() -> None:
    """The whole feeder in-process: local config first, then the API's version 1 (batch)."""
    remote = CONFIG.model_copy(update={"version": 1, "tps": 200, "mode": "batch"})
    routes = {
        "GET /feeder/config": sequence(
            (404, {}, {"detail": "Not Found"}),
            (200, {}, CONFIG.model_copy(update={"version": 0}).model_dump(mode="json")),
            (200, {}, remote.model_dump(mode="json")),
        ),
        "POST /feeder/status": sequence((200, {}, {"status": "ok"})),
    }
    with stub_server(answer, routes) as server:
        settings = Settings(
            target_url=server.url,
            symbols="AAPL",
            sources="x",
            tps=20,
            seed=5,
            feeder_id="unit-feeder",
            status_interval=0.5,
        )

        async def go() -> Counters:
            sim = SimulatedTime(START)
            runners: list[Runner] = []
            task = asyncio.create_task(
                run_feeder(settings, runners.append, clock=SimulatedClock(sim))
            )
            # pacing, rate sampler, config poll and status report: polls at 0 s (404),
            # 1 s (version 0: ignored) and 2 s (version 1: applied).
            await sim.run_until(START + 3.5, 4)
            runners[0].stop()
            return await asyncio.wait_for(task, 30)

        counters = asyncio.run(go())
    singles = server.to("POST", "/ingest/tick")
    batches = server.to("POST", "/ingest/ticks")
    assert singles and {r.payload["symbol"] for r in singles} == {"AAPL"}
    assert batches and {p["symbol"] for r in batches for p in r.payload} == {"BTCUSDT", "EURUSD"}
    assert counters.accepted == counters.sent > 200
    assert len(server.to("GET", "/feeder/config")) == 4  # once a second: 0, 1, 2 and 3 s
    statuses = [FeederStatus.model_validate(r.payload) for r in server.to("POST", "/feeder/status")]
    assert statuses[0].feeder_id == "unit-feeder"
    assert statuses[0].config_version == 0 and statuses[-1].config_version == 1
    assert statuses[-1].sent == counters.sent  # the final report carries the final counters
