"""Remote control against a real local HTTP server: new versions are applied, anything else
(404, errors, version 0, an unreachable API) keeps the config the feeder has. The cadences run on
simulated time, so the number of polls and reports is exact."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, cast

from backend.core.feeder_config import FeederConfig, FeederStatus
from backend.settings import Settings
from feeder.control import Control, ControlClient, RateMeter, config_from_settings
from tests.support.simulated_time import SimulatedClock, SimulatedTime
from tests.unit.feeder.stub_server import Reply, sequence, stub_server

BASE = FeederConfig(symbols=["BTCUSDT"], sources=["a"], tps=10)
START = 1_700_000_000.0  # simulated epoch seconds
LOOPS = 2  # the config poll and the status report


def config_reply(**changes: Any) -> Reply:
    return 200, {}, BASE.model_copy(update=changes).model_dump(mode="json")


def settings_for(url: str) -> Settings:
    return Settings(target_url=url, ingest_username="feeder", ingest_password="s3cret")


def poll(url: str, times: int, applied_version: int = 0) -> list[FeederConfig]:
    applied: list[FeederConfig] = []

    async def go() -> None:
        client = ControlClient(settings_for(url), timeout=0.5)
        control = Control(
            client,
            applied.append,
            lambda: FeederStatus(feeder_id="f"),
            applied_version=applied_version,
        )
        for _ in range(times):
            await control.poll_once()
        await client.aclose()

    asyncio.run(go())
    return applied


def test_applies_each_new_version_once() -> None:
    replies = [config_reply(version=1, tps=50)] * 2 + [config_reply(version=2, running=False)]
    with stub_server(routes={"GET /feeder/config": sequence(*replies)}) as server:
        applied = poll(server.url, 4)
    assert [(c.version, c.tps, c.running) for c in applied] == [(1, 50, True), (2, 10, False)]
    expected = "Basic " + base64.b64encode(b"feeder:s3cret").decode()
    assert server.requests[0].headers["Authorization"] == expected


def test_version_zero_never_overrides_the_local_config() -> None:
    with stub_server(routes={"GET /feeder/config": sequence(config_reply(version=0))}) as server:
        assert poll(server.url, 2) == []


def test_keeps_the_config_on_404_errors_and_garbage() -> None:
    replies = [
        (404, {}, {"detail": "Not Found"}),
        (500, {}, {"detail": "boom"}),
        (200, {}, {"version": 3, "tps": "fast"}),
        (401, {}, {"detail": "no"}),
    ]
    with stub_server(routes={"GET /feeder/config": sequence(*replies)}) as server:
        assert poll(server.url, 4) == []


def test_unreachable_api_keeps_the_config() -> None:
    with stub_server() as gone:
        url = gone.url
    assert poll(url, 2) == []


def test_a_reset_api_is_followed() -> None:
    """A new version number, even a lower one (API state reset), is a change to apply."""
    with stub_server(routes={"GET /feeder/config": sequence(config_reply(version=2))}) as server:
        assert [c.version for c in poll(server.url, 1, applied_version=7)] == [2]


def test_reports_status_on_a_cadence() -> None:
    calls = {"n": 0}

    def status() -> FeederStatus:
        calls["n"] += 1
        return FeederStatus(feeder_id="f-1", sent=calls["n"], target_tps=5.0)

    async def go(url: str) -> None:
        sim = SimulatedTime(START)
        client = ControlClient(settings_for(url))
        control = Control(
            client,
            lambda c: None,
            status,
            poll_interval=0.1,
            status_interval=0.1,
            clock=SimulatedClock(sim),
        )
        task = asyncio.create_task(control.run())
        await sim.run_until(START + 0.55, LOOPS)  # each loop parks after each real request
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()

    routes = {"POST /feeder/status": sequence((200, {}, {"status": "ok"}))}
    with stub_server(routes=routes) as server:
        asyncio.run(go(server.url))
    posts = server.to("POST", "/feeder/status")
    polls = server.to("GET", "/feeder/config")
    assert len(posts) == len(polls) == 6  # once per 0.1 s interval: at 0, 0.1, ... 0.5 s
    reports = [FeederStatus.model_validate(r.payload) for r in posts]  # the shared model
    assert [r.sent for r in reports] == list(range(1, len(reports) + 1))
    assert reports[0].feeder_id == "f-1" and reports[0].target_tps == 5.0
    assert {k.lower(): v for k, v in posts[0].headers.items()}["content-type"] == "application/json"


def test_a_slow_step_delays_the_next_one_and_never_stacks() -> None:
    """The cadence is measured on the clock: a step that takes 0.25 s of a 0.1 s interval is
    followed at once by the next, not by the two it missed."""
    sim = SimulatedTime(START)
    started: list[float] = []

    async def slow_step() -> None:
        started.append(round(sim.now - START, 6))
        await sim.sleep(0.25)

    async def go() -> None:
        control = Control(
            cast(ControlClient, None),
            lambda c: None,
            lambda: FeederStatus(feeder_id="f"),
            clock=SimulatedClock(sim),
        )
        task = asyncio.create_task(control._every(0.1, slow_step))
        await sim.run_until(START + 0.8, 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    assert started == [0.0, 0.25, 0.5, 0.75]


def test_status_failures_do_not_stop_the_loops() -> None:
    async def go(url: str) -> None:
        sim = SimulatedTime(START)
        client = ControlClient(settings_for(url), timeout=0.2)
        control = Control(
            client,
            lambda c: None,
            lambda: FeederStatus(feeder_id="f"),
            poll_interval=0.05,
            status_interval=0.05,
            clock=SimulatedClock(sim),
        )
        task = asyncio.create_task(control.run())
        await sim.run_until(START + 0.325, LOOPS)
        assert not task.done()
        # Both loops went on failing and retrying once per interval (0, 0.05, ... 0.3 s).
        assert sim.calls == 2 * 7
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert client.last_error is not None
        await client.aclose()

    with stub_server() as gone:
        url = gone.url
    asyncio.run(go(url))


def test_config_from_settings() -> None:
    settings = Settings(
        symbols="AAPL,MSFT",
        sources="x",
        tps=25,
        ingest_mode="batch",
        duplicate_rate=0.1,
        out_of_order_rate=0.2,
        gap_rate=0.03,
        bad_tick_rate=0.04,
    )
    config = config_from_settings(settings)
    assert (config.version, config.running, config.symbols, config.sources) == (
        0,
        True,
        ["AAPL", "MSFT"],
        ["x"],
    )
    assert (config.tps, config.mode) == (25, "batch")
    rates = (config.duplicate_rate, config.out_of_order_rate, config.gap_rate, config.bad_tick_rate)
    assert rates == (0.1, 0.2, 0.03, 0.04)


def test_rate_meter_measures_over_its_window() -> None:
    meter = RateMeter(window=2.0)
    assert meter.rate() == 0.0
    for i in range(41):  # 100 per second for 10 s, sampled every 0.25 s
        meter.sample(i * 0.25, i * 25)
    assert meter.rate() == 100.0
    for i in range(41, 61):  # then 300 per second for 5 s
        meter.sample(i * 0.25, 1_000 + (i - 40) * 75)
    assert meter.rate() == 300.0
