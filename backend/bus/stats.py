"""Counters shared across processes, kept in one Redis hash.

Workers and API processes on any host add to them; the API's /metrics and /stats expose them.
Prometheus-style cumulative counters, so reads from any API replica agree.

Fields: the ingest outcomes (written by the ingest script, atomically with the hand-off),
`rejected:<reason>` (flushed by each API's stats sampler), the calc counters, the flush histogram
`flush_seconds_le_<bound>` and the ingest→view latency histogram `view_latency_le_<bound>`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from backend.bus.lua import queue_hincrby_many
from backend.core.ticks import TickIn

# Upper bounds (seconds) of the flush latency histogram.
FLUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Upper bounds (seconds) of the ingest→view latency histogram; `+Inf` counts every observation.
VIEW_LATENCY_BUCKETS = FLUSH_BUCKETS
INF = "+Inf"
VIEW_LATENCY_PREFIX = "view_latency_le_"
REJECTED_PREFIX = "rejected:"

# Reasons a rejected tick is counted under (`rejection_reason`): the tick's fields, `body` (not
# a JSON object) and `unavailable` (Redis down, 503).
_KNOWN_REASONS = frozenset((*TickIn.model_fields, "body", "unavailable"))

# Bounds in whole µs: the comparison `latency <= bound` is then exact (no float rounding).
_VIEW_BOUNDS_US = tuple(round(bound * 1_000_000) for bound in VIEW_LATENCY_BUCKETS)
_VIEW_FIELDS = (
    *(f"{VIEW_LATENCY_PREFIX}{b}" for b in VIEW_LATENCY_BUCKETS),
    VIEW_LATENCY_PREFIX + INF,
)


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


def view_latency_fields(latencies_us: Iterable[int]) -> dict[str, int]:
    """HINCRBY increments recording ingest→view latencies (µs) in the cumulative histogram."""
    return histogram_fields(latencies_us, _VIEW_BOUNDS_US, _VIEW_FIELDS)


def histogram_fields(
    latencies_us: Iterable[int], bounds_us: Sequence[int], names: Sequence[str]
) -> dict[str, int]:
    """HINCRBY increments for a cumulative histogram with `bounds_us` (`names`: one per bound,
    then `+Inf`).

    Like Prometheus buckets: an observation counts in every bucket whose bound is >= it, and
    always in `+Inf`. Negative latencies (clock skew between hosts) count as 0. Buckets left at
    zero are omitted, so the caller issues only the HINCRBYs that change something.
    """
    exact = [0] * len(names)  # observations whose smallest covering bucket is i
    for latency in latencies_us:
        exact[bisect_left(bounds_us, max(latency, 0))] += 1
    fields: dict[str, int] = {}
    running = 0
    for name, count in zip(names, exact, strict=True):
        running += count
        if running:
            fields[name] = running
    return fields


def add_counters(pipe: Any, stats_key: str, fields: dict[str, int]) -> None:
    """Queue, as one command (`hincrby_many.lua`: a step's counters and histogram buckets would
    otherwise be many commands), HINCRBY of every non-zero integer counter in `fields`."""
    queue_hincrby_many(pipe, key=stats_key, increments=fields)


def record(pipe: Any, stats_key: str, fields: dict[str, float]) -> None:
    for name, value in fields.items():
        pipe.hincrbyfloat(stats_key, name, value)


def rejection_reason(field: str) -> str:
    """The `rejected:<reason>` a validation error counts under: the tick field it names.

    Unknown fields are client-chosen names, so they share one reason: the hash (and /metrics
    labels) stay bounded whatever clients send.
    """
    return field if field in _KNOWN_REASONS else "unknown_field"


def parse(raw: dict[bytes, bytes]) -> dict[str, float]:
    """The stats hash as numbers; a field that is not a number (never written by us) is skipped."""
    out: dict[str, float] = {}
    for key, value in raw.items():
        try:
            out[key.decode(errors="replace")] = float(value)
        except ValueError:
            continue
    return out
