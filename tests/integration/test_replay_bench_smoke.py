"""The replay benchmark's whole code path, tiny: 20,000 stored ticks, one round of 1 s phases.

The real run is `make bench-replay` (10M ticks, 30 s phases, 3 rounds). Here the seed, the
replay at max with its sampled curve, and one latency round without / with a replay must all
produce their figures and print their table rows. Nothing here looks at how fast anything was.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from backend.settings import Settings
from tests.bench.replay import cli

pytestmark = [pytest.mark.integration, pytest.mark.bench]


@pytest.mark.timeout(180)
def test_replay_bench_prints_its_tables(
    servers: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "replay.json"
    base = Settings().model_copy(update={"redis_url": servers.redis_url, "pg_url": servers.pg_url})
    argv = [
        *("--ticks", "20000", "--database", f"tickstream_replay_smoke_{secrets.token_hex(4)}"),
        *("--drop", "--phase-s", "1", "--rounds", "1", "--live-tps", "100"),
        *("--sample-s", "0.2", "--json", str(out)),
    ]

    assert cli.main(argv, base) == 0

    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["seed"]["ticks"] == 20_000 and report["seed"]["seconds"] is not None
    m = report["max"]
    assert m["state"] == "done" and m["ticks_applied"] == m["ticks_total"] == 20_000
    assert [c["pct"] for c in m["curve"]] == list(range(10, 101, 10))
    assert m["curve"][-1]["ticks_applied"] == 20_000
    assert all(c["rss_mb"] > 0 for c in m["curve"])
    assert m["rate_overall"] and m["rate_overall"] > 0
    assert m["redis"]["namespace_keys"] > 0 and m["redis"]["namespace_bytes"] > 0
    assert m["cpu_cores"]["history"] is not None
    lat = report["latency"]
    assert lat["ok"]
    for key in ("ack_p50", "ack_p99", "view_p50", "view_p95"):
        assert lat[key]["without"] is not None and lat[key]["with"] is not None, key
        assert lat[key]["ratio"] is not None, key
    # The printed tables: every 10 % row of the curve, and every latency row.
    for pct in range(10, 101, 10):
        assert f"\n{pct} %" in printed, pct
    for label in ("ack ms p50", "ack ms p99", "ingest→view ms p50", "ingest→view ms p95"):
        assert f"\n{label}" in printed, label
    assert "rate: median" in printed and "Redis kept by the replay" in printed
