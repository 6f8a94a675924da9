"""The scaling ladder's pure parts: when a layout counts as keeping up, and the table."""

from __future__ import annotations

from tests.bench.pipeline.scaling import kept_up, parse_layout, render, us_per_tick_by_tier

CELL = {"accepted_tps": 9_950.0, "views_tps": 9_940.0, "pg_tps": 8_000.0, "pg_p99": 900.0}


def test_a_layout_keeps_up_when_ingest_and_views_follow_and_postgres_does_not_lag() -> None:
    assert kept_up(CELL, 10_000)
    # Postgres's rate counts the last flush interval: a low rate alone is not falling behind.
    assert kept_up(CELL | {"pg_tps": 5_000.0}, 10_000)


def test_a_layout_falls_behind_on_ingest_views_or_a_growing_postgres_queue() -> None:
    assert not kept_up(CELL | {"accepted_tps": 8_000.0}, 10_000)
    assert not kept_up(CELL | {"views_tps": 8_999.0}, 10_000)
    assert not kept_up(CELL | {"pg_p99": 12_000.0}, 10_000)
    assert not kept_up(CELL | {"pg_p99": None}, 10_000)
    assert not kept_up({}, 10_000)


def test_layouts_parse_and_the_table_gives_rates_and_cpu_per_tier_per_layout() -> None:
    assert parse_layout("2x4") == (2, 4)
    tiers = {"api": 40.0, "worker": 30.0, "gateway": 2.0, "redis-server": 15.0, "postgres": 8.0}
    row = {
        "api_procs": 2, "worker_processes": 4, "mode": "batch", "offered_tps": 50_000.0,
        "kept_up": False, "views_complete": True, "exactly_once": True, "feeder_cpu_s": 3.0,
        "accepted_tps": 19_000.0, "views_tps": 18_900.0, "pg_tps": 18_500.0, "view_p99": 250.0,
        "pg_p99": 900.0, "cpu_s_per_1k": 0.095, "redis_us": 14.2, "cpu_us_per_tick": tiers,
    }  # fmt: skip
    wrk = row | {"mode": "wrk", "offered_tps": None, "kept_up": None, "accepted_tps": 2_500.0}
    table = render([wrk, row])
    assert "batch accepted ticks/s per layout: 2×4: 19,000/s" in table
    assert "wrk accepted ticks/s per layout: 2×4: 2,500/s" in table
    assert "behind" in table and "max rate" in table and "EXACTLY-ONCE FAILED" not in table
    assert "14.2" in table and "95" in table  # Redis main thread; all tiers' µs per tick
    assert "EXACTLY-ONCE FAILED" in render([row | {"exactly_once": False}])


def test_cpu_per_tick_per_tier_is_in_microseconds() -> None:
    cell = {"cpu_s_per_1k_by_process": {"api": 0.04, "redis-server": 0.015}}
    tiers = us_per_tick_by_tier(cell)
    assert tiers["api"] == 40.0 and tiers["redis-server"] == 15.0
    assert tiers["worker"] is None
