"""The scaling ladder's pure parts: when a layout counts as keeping up, and the table."""

from __future__ import annotations

from tests.bench.pipeline.scaling import kept_up, parse_layout, render

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


def test_layouts_parse_and_the_table_names_the_best_rate_per_layout() -> None:
    assert parse_layout("2x3") == (2, 3)
    row = {
        "api_procs": 2, "worker_processes": 3, "offered_tps": 10_000.0, "kept_up": True,
        "exactly_once": True, "feeder_cpu_s": 3.0, "accepted_tps": 9_950.0,
        "views_tps": 9_940.0, "pg_tps": 9_900.0, "view_p99": 250.0, "pg_p99": 900.0,
        "cpu_s_per_1k": 0.1,
    }  # fmt: skip
    behind = row | {"offered_tps": 30_000.0, "accepted_tps": 19_000.0, "kept_up": False}
    table = render([row, behind])
    assert "2×3: 9,950/s" in table
    assert "behind" in table and "EXACTLY-ONCE FAILED" not in table
    assert "EXACTLY-ONCE FAILED" in render([row | {"exactly_once": False}])
