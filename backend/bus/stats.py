"""Counters shared across processes, kept in one Redis hash.

Workers on any host add to them; the API's /metrics exposes them. Prometheus-style cumulative
counters, so scrapes from any API replica agree.
"""

from __future__ import annotations

from typing import Any

# Upper bounds (seconds) of the flush latency histogram.
FLUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def flush_fields(rows_written: int, ticks: int, seconds: float) -> dict[str, float]:
    """HINCRBYFLOAT increments recording one committed flush."""
    fields: dict[str, float] = {
        "flush_count": 1,
        "flush_ticks_sum": ticks,
        "flush_seconds_sum": seconds,
        "rows_written": rows_written,
    }
    for bound in FLUSH_BUCKETS:
        if seconds <= bound:
            fields[f"flush_seconds_le_{bound}"] = 1
    return fields


def record(pipe: Any, stats_key: str, fields: dict[str, float]) -> None:
    for name, value in fields.items():
        pipe.hincrbyfloat(stats_key, name, value)


def parse(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}
