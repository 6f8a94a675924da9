"""The pipeline benchmark's whole code path, tiny: 1 run, 2-3 s per cell, low offered rates.

The real run is `make bench` (`python -m tests.bench.pipeline`: 3 runs per cell, ≈ 10 min). Here
both systems (ours and the naive baseline) get each mode once (single and batch from the feeder;
wrk, unpaced, in a test of its own), and the report must hold every metric for every cell, the
ratios, the plot, the exactly-once verdict for every run and issue 17's targets table. Nothing
here looks at how fast anything was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.pipeline import bench, scaling
from tests.bench.pipeline.report import METRICS, NOT_IN_WRK, OURS_ONLY
from tests.bench.pipeline.wrk import INSTALL_HINT, wrk_path

pytestmark = [pytest.mark.integration, pytest.mark.bench]


@pytest.mark.timeout(240)
def test_pipeline_bench_reports_everything_for_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    # 100 ticks/s single, 1,000 batch: enough ticks that the feeder's 1-in-50 Postgres latency
    # sample is never empty, little enough for a loaded 2-core box.
    argv = [
        *("--runs", "1", "--modes", "single,batch", "--duration", "3", "--single-tps", "100"),
        *("--batch-tps", "1000", "--batch-duration", "3", "--baseline-batch-tps", "1000"),
        *("--baseline-batch-duration", "3", "--dedup-ids", "0", "--json", str(out)),
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
            expected = [k for k in METRICS if system == "ours" or k not in OURS_ONLY]
            missing = [key for key in expected if cell.get(key) is None]
            assert not missing, (system, mode, missing)
            assert cell["exactly_once"] and cell["runs"] == 1
            assert cell["rss_mb"] and all(v and v > 0 for v in cell["rss_mb"].values()), cell
    assert any(k.startswith("worker") for k in report["summary"]["ours"]["batch"]["rss_mb"])
    for mode in ("single", "batch"):
        ratios = report["ratios"][mode]
        assert all(ratios[key] is not None for key in METRICS if key not in OURS_ONLY), ratios
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
            assert run["redis_us_per_tick"] > 0, run  # Redis's main thread, per tick
    # Issue 17's targets: every row of the modes that ran, with ours and the baseline.
    rows = {row["target"]: row for row in report["targets"]}
    ack = next(r for t, r in rows.items() if "ack p99" in t)
    assert ack["ours"] is not None and ack["baseline"] is not None and ack["ratio"] is not None
    batch = next(r for t, r in rows.items() if t.startswith("batch") and "accepted" in t)
    assert batch["met"] is False and "not the target" in batch["note"], batch  # 1,000/s, 3 s
    assert any("Redis CPU per tick" in t and r["ours"] for t, r in rows.items()), rows


@pytest.mark.timeout(120)
def test_wrk_mode_measures_both_systems_and_fills_the_targets_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wrk (unpaced, one unique tick per request) against both systems, 2 s each: every
    acknowledged tick stored once, none unanswered, the views took them all, and the targets
    table prints the wrk row with both systems and their ratio."""
    if wrk_path() is None:
        pytest.skip(INSTALL_HINT)
    out = tmp_path / "pipeline.json"
    argv = ["--runs", "1", "--modes", "wrk", "--wrk-duration", "2", "--no-plot"]
    code = bench.main([*argv, "--dedup-ids", "1000", "--json", str(out)])

    report = json.loads(out.read_text())
    assert code == 0
    assert report["exactly_once"] is True
    assert sorted(r["system"] for r in report["runs"]) == ["baseline", "ours"]
    for run in report["runs"]:
        v = run["verification"]
        assert run["ok"] and v["exactly_once"], run
        assert v["missing"] == v["extra"] == v["duplicated"] == v["unanswered"] == 0, v
        assert run["accepted"] == v["stored"] > 0, run
        assert run["non_2xx"] == 0 and not run["errors"], run
        assert run["views"]["complete"], run["views"]
    for system in ("ours", "baseline"):
        cell = report["summary"][system]["wrk"]
        expected = [k for k in METRICS if k not in NOT_IN_WRK]
        expected = [k for k in expected if system == "ours" or k not in OURS_ONLY]
        missing = [key for key in expected if cell.get(key) is None]
        assert not missing, (system, missing)
    wrk_row = report["targets"][0]
    assert wrk_row["target"].startswith("wrk -t1 -c32"), wrk_row
    assert wrk_row["ours"] and wrk_row["baseline"] and wrk_row["ratio"], wrk_row
    assert wrk_row["met"] in (True, False)
    dedup = next(r for r in report["targets"] if "bytes per remembered" in r["target"])
    assert (dedup["ours"] is None) == (dedup["met"] is None), dedup  # measured, or says why not
    printed = capsys.readouterr().out
    assert "== issue 17 targets" in printed and wrk_row["target"] in printed


@pytest.mark.timeout(240)
def test_scaling_runs_each_layout_and_records_its_figures(tmp_path: Path) -> None:
    """Two layouts (1 and 2 API processes) in batch mode at a low rate: every row carries its
    figures, CPU per tick per tier and the exactly-once verdict. (When a layout keeps up is
    `kept_up`'s job: unit-tested; the wrk mode is the test above's.)"""
    out = tmp_path / "scaling.json"
    argv = ["--layouts", "1x1,2x1", "--modes", "batch", "--batch-tps", "500", "--duration", "2"]
    code = scaling.main([*argv, "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert code == 0
    assert [(r["api_procs"], r["worker_processes"], r["mode"]) for r in rows] == [
        (1, 1, "batch"), (2, 1, "batch")
    ]  # fmt: skip
    for row in rows:
        assert row["cpu_us_per_tick"]["api"] and row["cpu_us_per_tick"]["redis-server"], row
        assert row["exactly_once"], row
        assert row["accepted_tps"] and row["views_tps"] and row["pg_tps"], row
        assert row["pg_p99"] is not None and row["view_p99"] is not None, row
        assert row["cpu_s_per_1k"] and row["cpu_s_per_1k"] > 0, row
