"""The pipeline benchmark's whole code path, tiny: 1 run, 3 s per cell, low offered rates.

The real run is `make bench` (`python -m tests.bench.pipeline`: 3 runs per cell, ≈ 6 min). Here
both systems (ours and the naive baseline) get both modes once, and the report must hold every
metric for every cell, the ratios, the plot, and the feeder's exactly-once verdict for every
run. Nothing here looks at how fast anything was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.pipeline import bench, scaling
from tests.bench.pipeline.report import METRICS

pytestmark = [pytest.mark.integration, pytest.mark.bench]


@pytest.mark.timeout(240)
def test_pipeline_bench_reports_everything_for_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    # 100 ticks/s single, 1,000 batch: enough ticks that the feeder's 1-in-50 Postgres latency
    # sample is never empty, little enough for a loaded 2-core box.
    argv = [
        *("--runs", "1", "--duration", "3", "--single-tps", "100", "--batch-tps", "1000"),
        *("--json", str(out)),
    ]
    code = bench.main(argv)

    report = json.loads(out.read_text())
    assert code == 0
    assert report["exactly_once"] is True
    assert len(report["runs"]) == 4
    for run in report["runs"]:
        assert run["ok"], run
        v = run["verification"]
        assert v["missing"] == 0 and v["extra"] == 0 and v["duplicated"] == 0, v
        assert run["accepted"] == run["offered"], run
        assert run["views"]["complete"], run["views"]
        assert run["cpu_s"] > 0, run
    for system in ("ours", "baseline"):
        for mode in ("single", "batch"):
            cell = report["summary"][system][mode]
            missing = [key for key in METRICS if cell.get(key) is None]
            assert not missing, (system, mode, missing)
            assert cell["exactly_once"] and cell["runs"] == 1
            assert cell["rss_mb"] and all(v and v > 0 for v in cell["rss_mb"].values()), cell
    assert any(k.startswith("worker") for k in report["summary"]["ours"]["batch"]["rss_mb"])
    for mode in ("single", "batch"):
        assert all(report["ratios"][mode][key] is not None for key in METRICS), report["ratios"]
    assert Path(report["plot"]).stat().st_size > 0
    # Redis's own CPU accounting, per command, for ours (the ingest script at least).
    redis_cost = report["summary"]["ours"]["batch"]["redis_us_per_tick"]
    assert redis_cost.get("evalsha", 0) > 0, redis_cost
    # The API's own view of ack latency (its histogram), and Redis's latency monitor per run.
    for run in report["runs"]:
        if run["system"] == "ours":
            assert run["api_ack_ms"]["requests"] > 0, run["api_ack_ms"]
            assert run["api_ack_ms"]["p99_le_ms"] is not None, run["api_ack_ms"]
            assert isinstance(run["redis_stalls_ms"], dict)


@pytest.mark.timeout(240)
def test_scaling_ladder_runs_each_layout_and_records_its_figures(tmp_path: Path) -> None:
    """Two layouts (1 and 2 API processes) at one low rate: every row carries its figures and
    the exactly-once verdict. (When a layout stops climbing is `kept_up`'s job: unit-tested.)"""
    out = tmp_path / "scaling.json"
    code = scaling.main(
        ["--layouts", "1x1,2x1", "--rates", "500", "--duration", "2", "--json", str(out)]
    )
    rows = json.loads(out.read_text())["rows"]
    assert code == 0
    assert [(r["api_procs"], r["worker_processes"], r["offered_tps"]) for r in rows] == [
        (1, 1, 500), (2, 1, 500)
    ]  # fmt: skip
    for row in rows:
        assert row["exactly_once"], row
        assert row["accepted_tps"] and row["views_tps"] and row["pg_tps"], row
        assert row["pg_p99"] is not None and row["view_p99"] is not None, row
        assert row["cpu_s_per_1k"] and row["cpu_s_per_1k"] > 0, row
