"""The load generator against the real system: short runs, both modes, verified exactly once."""

from __future__ import annotations

import asyncio

import pytest

from backend.settings import Settings
from feeder.bench import Bench, BenchConfig, format_table
from tests.support.processes import Processes

pytestmark = [pytest.mark.integration, pytest.mark.bench]


@pytest.mark.parametrize(("mode", "tps"), [("single", 150), ("batch", 1500)])
def test_bench_measures_and_verifies_exactly_once(
    procs: Processes, settings: Settings, mode: str, tps: int
):
    procs.start_api()
    procs.start_worker(processes=1, threads=2)
    procs.start_gateway()  # the bench's views come through the API's 307 to it
    cfg = BenchConfig(
        target=procs.api_url, tps=tps, duration=3, symbols=3, mode=mode, connections=8
    )
    result = asyncio.run(Bench(cfg, settings).run())
    print(format_table(result))
    assert result["offered"] == tps * 3
    assert result["accepted"] == result["offered"]
    assert result["verification"]["exactly_once"] is True
    assert result["verification"]["stored"] == result["offered"]
    assert result["ack_ms"]["n"] > 0 and result["ack_ms"]["p50"] > 0
    assert result["view_ms"]["n"] > 0  # symbol.updated events named our ticks
    assert result["persist_ms"]["n"] > 0  # sampled ticks were seen landing in Postgres
