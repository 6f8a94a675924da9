"""Figures from raw measurements: latency percentiles, and the medians over runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def latency_summary(latencies: Sequence[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": round(ordered[-1], 2)}  # fmt: skip


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row: the median of each figure over the runs of one scenario."""
    first = runs[0]
    row: dict[str, Any] = {
        "server": first["server"],
        "stalled": first["stalled"],
        "runs": len(runs),
        "clients": first["clients"],
        "healthy_clients": first["healthy_clients"],
        "stalled_clients": first["stalled_clients"],
        "refused": max(r["refused"] for r in runs),
        "healthy_without_events": max(r["healthy_without_events"] for r in runs),
        "load_1m": [r["load_1m"] for r in runs],
    }
    for key in ("published_per_s", "deliveries_per_s", "received_share", "cpu_share",
                "cpu_ms_per_1000", "client_procs_cpu_share"):  # fmt: skip
        row[key] = _median([r[key] for r in runs])
    for key in ("p50", "p90", "p99", "p999", "max"):
        row[f"{key}_ms"] = _median([r["latency_ms"][key] for r in runs])
    for key in ("idle", "start", "peak", "end"):
        row[f"rss_{key}"] = _median([r["rss"][key] for r in runs])
    if "gateway" in first:
        for group in ("stalled", "healthy"):
            for key in ("coalesced", "dropped", "missed_reports", "queued_max"):
                row[f"{group}_{key}"] = _median([r["gateway"][group][key] for r in runs])
    return row
