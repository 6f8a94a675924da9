"""Buffer and dispatch against real local HTTP servers: batches flush by size or by time, and
the bounded buffer drops the oldest ticks while the server is down, then drains when it is back.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from backend.settings import Settings
from feeder.client import TickClient
from feeder.delivery import CLOSE_POLL_S, Delivery, Recorder
from feeder.outcomes import Counters
from tests.support.simulated_time import SimulatedClock, SimulatedTime
from tests.unit.feeder.stub_server import Reply, StubServer, accept_batches, stub_server

START = 1_700_000_000.0  # simulated epoch seconds

T0 = 1_790_000_000_000


def tick(i: int) -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT",
        "price": 60_000.0 + i,
        "volume": 0.1,
        "source": "a",
        "ts": T0 + i,
        "event_id": f"e{i}",
        "seq": i + 1,
    }


def answer(n: int, payload: Any) -> Reply:
    if isinstance(payload, list):
        return accept_batches(n, payload)
    return 200, {}, {"status": "accepted"}


def client_for(url: str) -> TickClient:
    return TickClient(
        Settings(target_url=url),
        max_attempts=None,
        max_retry_time=None,
        backoff_initial=0.01,
        backoff_max=0.05,
    )


def sent_ids(server: StubServer) -> list[str]:
    out: list[str] = []
    for r in server.requests:
        if r.path == "/ingest/ticks":
            out += [p["event_id"] for p in r.payload]
        elif r.path == "/ingest/tick":
            out.append(r.payload["event_id"])
    return out


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_batch_flushes_at_batch_max_without_waiting_for_the_linger() -> None:
    sim = SimulatedTime(START)
    arrivals: list[tuple[float, int]] = []

    def record(n: int, payload: Any) -> Reply:
        arrivals.append((sim.now - START, len(payload)))  # when, on the simulated clock
        return accept_batches(n, payload)

    async def go(url: str) -> tuple[float | None, Counters]:
        async with client_for(url) as client:
            delivery = Delivery(
                client, mode="batch", batch_max=500, batch_linger=1.0, clock=SimulatedClock(sim)
            )
            delivery.start()
            for i in range(1_200):
                delivery.submit(tick(i))
            await until(lambda: client.counters.accepted == 1_000)  # the clock has not moved
            await sim.until_asleep(1)  # the remainder lingers...
            lingering_until = sim.next_wake
            assert delivery.waiting == 200
            sim.advance(1.0)  # ... for the linger, then goes
            await until(lambda: client.counters.accepted == 1_200)
            await delivery.close()
            return lingering_until, client.counters

    with stub_server(record) as server:
        lingering_until, counters = asyncio.run(go(server.url))
    assert sorted(arrivals) == [(0.0, 500), (0.0, 500), (1.0, 200)]  # full ones at once
    assert lingering_until == START + 1.0
    assert sorted(sent_ids(server)) == sorted(f"e{i}" for i in range(1_200))
    assert (counters.sent, counters.accepted, counters.dropped) == (1_200, 1_200, 0)


def test_batch_flushes_after_the_linger_when_few_ticks_wait() -> None:
    sim = SimulatedTime(START)

    async def go(server: StubServer) -> float | None:
        async with client_for(server.url) as client:
            delivery = Delivery(
                client, mode="batch", batch_max=500, batch_linger=0.05, clock=SimulatedClock(sim)
            )
            delivery.start()
            for i in range(3):
                delivery.submit(tick(i))
            await sim.until_asleep(1)
            lingering_until = sim.next_wake
            assert server.requests == []  # held for the linger
            sim.advance(0.05)
            await until(lambda: client.counters.accepted == 3)
            await delivery.close()
            return lingering_until

    with stub_server(answer) as server:
        lingering_until = asyncio.run(go(server))
    assert [len(r.payload) for r in server.requests] == [3]
    assert lingering_until == START + 0.05


def test_single_mode_posts_each_tick_and_can_switch_to_batch() -> None:
    async def go(url: str) -> Counters:
        async with client_for(url) as client:
            delivery = Delivery(client, mode="single", batch_linger=0.01)
            delivery.start()
            for i in range(20):
                delivery.submit(tick(i))
            await until(lambda: client.counters.accepted == 20)
            delivery.mode = "batch"
            for i in range(20, 40):
                delivery.submit(tick(i))
            await until(lambda: client.counters.accepted == 40)
            await delivery.close()
            return client.counters

    with stub_server(answer) as server:
        counters = asyncio.run(go(server.url))
    paths = [r.path for r in server.requests]
    assert paths[:20] == ["/ingest/tick"] * 20
    assert set(paths[20:]) == {"/ingest/ticks"} and len(paths) < 40
    assert sorted(sent_ids(server)) == sorted(f"e{i}" for i in range(40))
    assert counters.sent == 40


def test_buffer_drops_oldest_while_down_then_drains_when_back() -> None:
    with stub_server() as gone:
        url = gone.url  # a real port, closed once the server has shut down
    port = int(url.rsplit(":", 1)[1])

    async def go() -> tuple[Delivery, int]:
        client = client_for(url)
        delivery = Delivery(client, mode="batch", buffer_max=100, batch_max=10, batch_linger=0.001)
        delivery.start()
        peak = 0
        for i in range(1_000):  # ~1 s of an outage at 1,000 ticks/s
            delivery.submit(tick(i))
            peak = max(peak, delivery.buffered)
            if i % 50 == 0:
                await asyncio.sleep(0.05)
        assert client.counters.retries > 0 and client.last_error  # it kept trying, no crash
        with stub_server(answer, port=port):
            await until(lambda: delivery.buffered == 0, timeout=10)
            await delivery.close()
        await client.aclose()
        return delivery, peak

    delivery, peak = asyncio.run(go())
    c = delivery.counters
    # Memory stayed bounded: the buffer plus what the in-flight requests hold.
    assert peak <= 100 + 4 * 10
    assert c.dropped + c.accepted == 1_000
    assert c.dropped >= 1_000 - 100 - 4 * 10
    assert c.accepted >= 100  # the newest ticks survived the outage


def test_drop_oldest_keeps_the_newest() -> None:
    async def go(url: str) -> None:
        async with client_for(url) as client:
            delivery = Delivery(client, buffer_max=100)
            for i in range(1_000):  # not started yet: everything waits in the buffer
                delivery.submit(tick(i))
            assert (delivery.counters.dropped, delivery.waiting) == (900, 100)
            delivery.start()
            await until(lambda: delivery.buffered == 0)
            await delivery.close()

    with stub_server(answer) as server:
        asyncio.run(go(server.url))
    assert sorted(sent_ids(server)) == sorted(f"e{i}" for i in range(900, 1_000))


def close_on_simulated_time(timeout: float, stall: float) -> tuple[Counters, float]:
    """close() against an API that is gone, on simulated time: when it gave up, and what was
    dropped. The clock moves only when close() is waiting on it."""
    with stub_server() as gone:
        url = gone.url
    sim = SimulatedTime(START)

    async def go() -> tuple[Counters, float]:
        async with client_for(url) as client:
            delivery = Delivery(client, max_in_flight=2, clock=SimulatedClock(sim))
            delivery.start()
            for i in range(10):
                delivery.submit(tick(i))
            closing = asyncio.create_task(delivery.close(timeout=timeout, stall=stall))
            while not closing.done():
                await asyncio.wait(
                    {closing, asyncio.create_task(sim.until_asleep(1))},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not closing.done() and sim.next_wake is not None:
                    sim.advance_to(sim.next_wake)
            await closing
            return client.counters, sim.now - START

    return asyncio.run(go())


def test_close_gives_up_after_timeout_and_counts_leftovers() -> None:
    counters, gave_up_at = close_on_simulated_time(timeout=0.3, stall=5.0)
    assert gave_up_at == pytest.approx(0.3, abs=CLOSE_POLL_S + 1e-6)
    assert counters.dropped == 10 and counters.answered == 0


def test_close_stops_waiting_once_the_api_stops_answering() -> None:
    counters, gave_up_at = close_on_simulated_time(timeout=30, stall=0.3)
    assert gave_up_at == pytest.approx(0.3, abs=CLOSE_POLL_S + 1e-6)  # the stall, not 30 s
    assert counters.dropped == 10


def test_recorder_writes_one_line_per_answered_tick(tmp_path: Path) -> None:
    path = tmp_path / "sent.jsonl"

    def mixed(n: int, payload: Any) -> Reply:
        rejected = [{"index": 1, "errors": [{"field": "price", "reason": "must be > 0"}]}]
        return 200, {}, {"accepted": len(payload) - 1, "duplicates": 0, "rejected": rejected}

    async def go(url: str) -> None:
        async with client_for(url) as client:
            recorder = Recorder(path)
            delivery = Delivery(client, mode="batch", batch_linger=0.01, recorder=recorder)
            delivery.start()
            for i in range(3):
                delivery.submit(tick(i), bad=i == 1)
            await until(lambda: delivery.counters.answered == 3)
            await delivery.close()
            recorder.write_summary(client.counters)
            recorder.close()

    with stub_server(mixed) as server:
        asyncio.run(go(server.url))
    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert lines[:3] == [
        {"event_id": "e0", "outcome": "delivered"},
        {"event_id": "e1", "outcome": "rejected"},
        {"event_id": "e2", "outcome": "delivered"},
    ]
    assert lines[3]["counters"]["bad_rejected"] == 1


def test_a_full_buffer_costs_bytes_not_kilobytes_per_tick() -> None:
    """orjson >= 3.12 over-allocates ~4 KB per result; buffered ticks are stored right-sized."""

    async def go() -> int:
        async with client_for("http://127.0.0.1:9") as client:
            delivery = Delivery(client, buffer_max=20_000)
            payloads = [tick(i) for i in range(40_000)]
            tracemalloc.start()
            try:
                for payload in payloads:
                    delivery.submit(payload)
                size, _peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert (delivery.waiting, delivery.counters.dropped) == (20_000, 20_000)
            return size

    assert asyncio.run(go()) < 20_000 * 600  # ~350 B per tick; 4 KB each would be 80 MB
