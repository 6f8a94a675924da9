"""The candles benchmark's whole code path on a tiny data set, so CI keeps it working.

The real run is `make bench-candles` (10M ticks); nothing here looks at timings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backend.settings import Settings
from tests.bench import candles_bench

pytestmark = [pytest.mark.integration, pytest.mark.bench]


@pytest.mark.timeout(120)
def test_candles_bench_runs_and_agrees_with_the_baseline(servers: Any, tmp_path: Path) -> None:
    out = tmp_path / "bench" / "candles.json"
    settings = Settings().model_copy(
        update={"pg_url": servers.pg_url, "redis_url": servers.redis_url}
    )
    argv = ["--ticks", "20000", "--symbols", "2", "--runs", "5", "--baseline-budget", "1"]
    code = candles_bench.main([*argv, "--json", str(out)], settings)

    assert code == 0
    report = json.loads(out.read_text())
    assert {"params", "machine", "load", "scaling", "results", "explain", "correctness"} <= set(
        report
    )
    assert report["correctness"]["ok"] is True
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["pg_version"]
    assert report["load"]["total"]["rows"] == 20_000
    assert set(report["load"]["rollups"]["rows"]) == {"md_candles_1m", "md_candles_1h"}
    assert [(r["interval"], r["window"]) for r in report["results"]] == [
        (i, w) for i in ("1m", "5m", "15m", "1h") for w in ("latest", "middle")
    ]
    for r in report["results"]:
        assert r["correct"] and r["candles"] > 0, r["problems"]
        assert r["http"]["runs"] == 5 and r["ours_sql"]["runs"] == 5
        assert r["baseline_sql"]["runs"] >= 5
        for key in ("http", "ours_sql", "baseline_sql"):
            assert {"p50_ms", "p95_ms", "p99_ms"} <= set(r[key])
    assert [p["loaded_ticks"] for p in report["scaling"]] == [2_000, 20_000]
    assert "md_candles_1m" in report["explain"]["1m_latest"]["ours"]
    assert "md_ticks" in report["explain"]["1m_latest"]["baseline"]

    with psycopg.connect(servers.pg_url) as conn:  # the throw-away database is gone
        gone = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s",
            (report["params"]["database"],),
        ).fetchone()
    assert gone == (0,)
