"""The pipeline's stats samples (`GET /stats`, `/stats/history`) parsed, and the Prometheus-style
arithmetic on cumulative counters and histograms that everything the Pipeline page shows is
derived from (pure: no Streamlit, no I/O).

- a counter that goes DOWN means Redis lost its data or was reset: the new value is taken as the
  increase since the reset (as Prometheus' `rate()` does), never a negative increase;
- quantiles come from the deltas of cumulative buckets, interpolated linearly within the bucket
  the rank falls in (Prometheus' `histogram_quantile`), None when nothing was observed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Buckets = Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Sample:
    """One pipeline-wide stats sample; every section holds plain floats (missing → absent)."""

    ts_us: int
    counters: Mapping[str, float] = field(default_factory=dict)
    rejected: Mapping[str, float] = field(default_factory=dict)
    flush_seconds_le: Buckets = field(default_factory=dict)
    view_latency_le: Buckets = field(default_factory=dict)
    alert_delivery_latency_le: Buckets = field(default_factory=dict)  # absent before alerts
    gauges: Mapping[str, float] = field(default_factory=dict)

    @property
    def ts(self) -> datetime:
        return datetime.fromtimestamp(self.ts_us / 1_000_000, UTC)

    def counter(self, name: str) -> float:
        """A cumulative counter; one never written yet is 0, as in Redis."""
        return self.counters.get(name, 0.0)


@dataclass(frozen=True, slots=True)
class History:
    """`GET /stats/history` parsed: samples oldest first, at distinct times."""

    interval_s: float
    retention_s: int | None
    samples: tuple[Sample, ...]


# --- parsing ----------------------------------------------------------------------------------


def to_number(value: Any) -> float | None:
    """A finite float from a JSON number or numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _numbers(section: Any) -> dict[str, float]:
    """A section's numeric fields; anything malformed is dropped rather than crashing a chart."""
    if not isinstance(section, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, value in section.items():
        number = to_number(value)
        if number is not None:
            out[str(key)] = number
    return out


def _ts_us(raw: Mapping[str, Any]) -> int | None:
    ts_us = raw.get("ts_us")
    if isinstance(ts_us, int) and not isinstance(ts_us, bool):
        return ts_us
    ts = raw.get("ts")
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return round(parsed.timestamp() * 1_000_000)
    return None


def parse_sample(raw: Any) -> Sample | None:
    """One sample from JSON, or None when it has no usable time."""
    if not isinstance(raw, Mapping):
        return None
    ts_us = _ts_us(raw)
    if ts_us is None:
        return None
    return Sample(
        ts_us=ts_us,
        counters=_numbers(raw.get("counters")),
        rejected=_numbers(raw.get("rejected")),
        flush_seconds_le=_numbers(raw.get("flush_seconds_le")),
        view_latency_le=_numbers(raw.get("view_latency_le")),
        alert_delivery_latency_le=_numbers(raw.get("alert_delivery_latency_le")),
        gauges=_numbers(raw.get("gauges")),
    )


def parse_samples(raws: Iterable[Any]) -> tuple[Sample, ...]:
    """Samples sorted by time, one per timestamp (the last one given wins)."""
    by_ts: dict[int, Sample] = {}
    for raw in raws:
        sample = parse_sample(raw)
        if sample is not None:
            by_ts[sample.ts_us] = sample
    return tuple(by_ts[ts] for ts in sorted(by_ts))


def infer_interval(samples: Sequence[Sample]) -> float | None:
    """The median spacing of the samples, for a body that does not say its interval."""
    deltas = sorted((b.ts_us - a.ts_us) / 1e6 for a, b in itertools.pairwise(samples))
    deltas = [d for d in deltas if d > 0]
    return deltas[len(deltas) // 2] if deltas else None


def parse_history(body: Mapping[str, Any]) -> History:
    """`GET /stats/history`'s body; a missing or silly `interval_s` is inferred from the data."""
    raw_samples = body.get("samples")
    samples = parse_samples(raw_samples if isinstance(raw_samples, list) else [])
    interval = to_number(body.get("interval_s"))
    if interval is None or interval <= 0:
        interval = infer_interval(samples) or 1.0
    retention = to_number(body.get("retention_s"))
    return History(
        interval_s=interval,
        retention_s=int(retention) if retention is not None else None,
        samples=samples,
    )


# --- counters and histograms --------------------------------------------------------------------


def counter_increase(previous: float, current: float) -> float:
    """How much a cumulative counter grew; a drop is a reset, so `current` counts from zero."""
    return current if current < previous else current - previous


def bucket_increase(previous: Buckets, current: Buckets) -> dict[str, float]:
    """Per-bucket growth of a cumulative histogram; any bucket that shrank (or vanished) means the
    histogram was reset, and then the current buckets ARE the growth since the reset."""
    reset = any(current.get(le, 0.0) < count for le, count in previous.items())
    if reset:
        return dict(current)
    return {le: count - previous.get(le, 0.0) for le, count in current.items()}


def add_buckets(total: Mapping[str, float], more: Buckets) -> dict[str, float]:
    keys = set(total) | set(more)
    return {le: total.get(le, 0.0) + more.get(le, 0.0) for le in keys}


def _bound(le: str) -> float | None:
    try:
        bound = float(le)
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


def histogram_quantile(q: float, buckets: Buckets, total: float | None = None) -> float | None:
    """The q-quantile of cumulative buckets {upper bound: count ≤ bound}, as Prometheus does it.

    `total` is the number of observations when the buckets lack "+Inf" (the flush histogram
    counts them in `flush_count`). The rank q·total is located in the first bucket whose count
    reaches it and interpolated linearly between that bucket's bounds (the first bucket starts
    at 0); a rank beyond the highest finite bound answers that bound, as nothing finer is known.
    None when there were no observations.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    points = sorted(
        (bound, count) for le, count in buckets.items() if (bound := _bound(le)) is not None
    )
    # Cumulative counts can only grow with the bound: repair rounding or torn reads.
    cumulative: list[tuple[float, float]] = []
    running = 0.0
    for bound, count in points:
        running = max(running, count)
        cumulative.append((bound, running))
    if total is not None and (not cumulative or not math.isinf(cumulative[-1][0])):
        cumulative.append((math.inf, max(total, running)))
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    observations = cumulative[-1][1]
    rank = q * observations
    lower, below = 0.0, 0.0
    for index, (upper, count) in enumerate(cumulative):
        if count >= rank and count > below:
            if math.isinf(upper):
                return lower if index > 0 else None
            if index == 0 and upper <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower
