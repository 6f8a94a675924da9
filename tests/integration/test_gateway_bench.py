"""The gateway benchmark's whole code path, tiny: 20 clients, 200 events/s, 3 s, one run.

The real run is `make bench-gateway` (1,000 clients at 2,000 events/s, 3 runs per scenario).
Here every scenario (gateway and old broadcaster, healthy and with stalled clients) runs once,
and the report must hold every figure for every row, the stalled clients' counters from the
gateway's /clients and /metrics, and events for every healthy client. Nothing here looks at
how fast anything was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.settings import Settings
from tests.bench import gateway

pytestmark = [pytest.mark.integration, pytest.mark.bench]


@pytest.mark.timeout(240)
def test_gateway_bench_reports_every_scenario(servers: Any, tmp_path: Path) -> None:
    out = tmp_path / "gateway.json"
    settings = Settings().model_copy(
        update={"redis_url": servers.redis_url, "pg_url": servers.pg_url}
    )
    argv = [
        *("--clients", "20", "--rate", "200", "--seconds", "3", "--warmup", "1"),
        *("--runs", "1", "--client-procs", "2", "--stalled-share", "0.1"),
        *("--json", str(out)),
    ]

    assert gateway.main(argv, settings) == 0

    report = json.loads(out.read_text())
    assert {"params", "machine", "rows", "runs"} <= set(report)
    rows = {(r["server"], r["stalled"]): r for r in report["rows"]}
    assert set(rows) == {(s, stalled) for s in ("ours", "baseline") for stalled in (False, True)}
    for (server, stalled), row in rows.items():
        assert row["clients"] == 20 and row["refused"] == 0
        assert row["stalled_clients"] == (2 if stalled else 0)
        assert row["healthy_without_events"] == 0  # every healthy client received events
        assert row["deliveries_per_s"] > 0 and row["published_per_s"] > 0
        for key in ("p50_ms", "p99_ms", "cpu_ms_per_1000", "rss_start", "rss_peak", "rss_end"):
            assert row[key] is not None, (server, stalled, key)
        assert row["rss_peak"] >= row["rss_start"]
    ours_stalled = rows[("ours", True)]
    for key in ("stalled_coalesced", "stalled_dropped", "healthy_coalesced", "healthy_dropped"):
        assert ours_stalled[key] is not None
    for run in report["runs"]:
        assert run["rss_samples"], run["server"]
        if run["server"] == "ours":
            gw = run["gateway"]
            assert gw["stalled"]["clients"] == run["stalled_clients"]
            assert gw["healthy"]["clients"] == run["healthy_clients"]
            assert "tickstream_gateway_delivered_events_total" in gw["metrics"]
