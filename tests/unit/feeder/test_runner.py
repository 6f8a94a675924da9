"""The pacing loop against a real local HTTP server: paced, bounded, and stops cleanly."""

from __future__ import annotations

import asyncio
import random
import threading
import time

from backend.config import Settings
from feeder.client import Counters, TickClient
from feeder.runner import Runner
from feeder.simulator import Simulator
from tests.unit.feeder.stub_server import stub_server


def run_for(url: str, seconds: float, *, tps: float, max_in_flight: int = 64) -> Counters:
    async def go() -> Counters:
        async with TickClient(Settings(target_url=url), max_connections=max_in_flight) as client:
            sim = Simulator(["BTCUSDT", "EURUSD"], ["a", "b"], random.Random(1))
            runner = Runner(sim, client, tps=tps, max_in_flight=max_in_flight)
            asyncio.get_running_loop().call_later(seconds, runner.stop)
            return await runner.run()

    return asyncio.run(go())


def test_paces_and_delivers_every_tick_once() -> None:
    with stub_server() as server:
        counters = run_for(server.url, 1.0, tps=100)
    ids = [r.payload["event_id"] for r in server.requests]
    assert 80 <= counters.sent <= 120
    assert counters.accepted == counters.sent == len(ids) == len(set(ids))
    assert counters.errors == 0


def test_in_flight_is_bounded() -> None:
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def slow(_n: int, _payload: dict) -> tuple[int, dict, dict]:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return 200, {}, {"status": "accepted"}

    with stub_server(slow) as server:
        counters = run_for(server.url, 1.0, tps=200, max_in_flight=4)
    assert peak[0] <= 4
    # Stopping let the in-flight requests finish: nothing lost, nothing abandoned.
    assert counters.accepted == counters.sent == len(server.requests)
    assert counters.sent < 200 * 0.5


def test_tps_zero_idles_until_stopped() -> None:
    with stub_server() as server:
        started = time.monotonic()
        counters = run_for(server.url, 0.3, tps=0)
        assert time.monotonic() - started >= 0.25
    assert counters.sent == 0 and server.requests == []


def test_second_stop_abandons_in_flight() -> None:
    def stuck(_n: int, _payload: dict) -> tuple[int, dict, dict]:
        time.sleep(3)
        return 200, {}, {"status": "accepted"}

    async def go(url: str) -> Counters:
        async with TickClient(Settings(target_url=url)) as client:
            sim = Simulator(["AAPL"], ["a"], random.Random(1))
            runner = Runner(sim, client, tps=50)
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, runner.stop)
            loop.call_later(0.4, runner.stop)
            return await runner.run()

    with stub_server(stuck) as server:
        started = time.monotonic()
        counters = asyncio.run(go(server.url))
        assert time.monotonic() - started < 2.0
    assert counters.sent >= 1 and counters.accepted == 0
