"""The Pipeline page's chart series, from parsed stats samples (`ui.stats_samples`); pure: no
Streamlit, no I/O, unit-tested.

- rates divide a counter's increase by the REAL time between the two samples (the sampler drifts);
- an interval much longer than `interval_s` means samples are missing: it yields None, a gap in
  the line, rather than an average that would look like measured data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ui.stats_samples import (
    History,
    Sample,
    bucket_increase,
    counter_increase,
    histogram_quantile,
)

# An interval longer than this many expected intervals has at least one sample missing.
GAP_FACTOR = 1.5
# Reject reasons drawn as their own line; the rest are summed into "other" (bounded traces).
MAX_REJECT_TRACES = 4
OTHER_REASON = "other"

INGEST_COUNTERS = ("ingest_accepted", "ingest_duplicate", "ingest_conflict")
FIRING_COUNTERS = ("alerts_fired", "alerts_test_fired")
DELIVERED = "alerts_delivered"
# Deliveries that ended without reaching the receiver: refused for good, or out of attempts.
UNDELIVERED_COUNTERS = ("alerts_delivery_failed", "alerts_delivery_dead")
UNDELIVERED = "alerts_undelivered"  # the series name of their summed rate
ALERT_WAITING_GAUGES = (
    "alert_deliveries_waiting",
    "alert_evaluations_waiting",
    "alert_history_entries",
)


@dataclass(frozen=True, slots=True)
class Series:
    """Points sharing one time axis; a None value is a gap in the line (not a zero)."""

    x: tuple[datetime, ...] = ()
    ys: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)

    def last(self, name: str) -> float | None:
        """The newest value of one line (None when it is a gap or there is no point)."""
        values = self.ys.get(name, ())
        return values[-1] if values else None


@dataclass(frozen=True, slots=True)
class PipelineSeries:
    """Every chart's data for the Pipeline page."""

    ingest: Series
    rejects: Series
    rows_written: Series
    depths: Series
    dead_letters: Series
    flush_latency: Series
    view_latency: Series
    workers: Series
    alert_firings: Series
    alert_deliveries: Series
    alert_latency: Series
    alert_waiting: Series


def is_gap(seconds: float, interval_s: float) -> bool:
    """True when the time between two samples means at least one sample is missing."""
    return seconds > GAP_FACTOR * interval_s


def pairs(samples: Sequence[Sample]) -> Iterable[tuple[Sample, Sample, float]]:
    """Consecutive samples with the seconds between them (out-of-order pairs skipped)."""
    for previous, current in itertools.pairwise(samples):
        seconds = (current.ts_us - previous.ts_us) / 1e6
        if seconds > 0:
            yield previous, current, seconds


def per_interval(
    samples: Sequence[Sample],
    interval_s: float,
    derive: Mapping[str, Callable[[Sample, Sample, float], float | None]],
) -> Series:
    """One point per interval, at its end, for each named derivation of (previous, current,
    seconds); an interval that spans missing samples is None for every line."""
    x: list[datetime] = []
    ys: dict[str, list[float | None]] = {name: [] for name in derive}
    for previous, current, seconds in pairs(samples):
        x.append(current.ts)
        gap = is_gap(seconds, interval_s)
        for name, fn in derive.items():
            ys[name].append(None if gap else fn(previous, current, seconds))
    return Series(tuple(x), {name: tuple(values) for name, values in ys.items()})


def counter_rate(name: str) -> Callable[[Sample, Sample, float], float]:
    def rate(previous: Sample, current: Sample, seconds: float) -> float:
        return counter_increase(previous.counter(name), current.counter(name)) / seconds

    return rate


def rates(samples: Sequence[Sample], interval_s: float, names: Sequence[str]) -> Series:
    """Per-second rates of cumulative counters (`counters` section), keyed by counter name."""
    return per_interval(samples, interval_s, {name: counter_rate(name) for name in names})


def reject_reasons(samples: Sequence[Sample], limit: int = MAX_REJECT_TRACES) -> list[str]:
    """The reasons worth a line of their own: the `limit` with most rejects (latest totals)."""
    latest: dict[str, float] = {}
    for sample in samples:
        latest.update(sample.rejected)
    ranked = sorted(latest, key=lambda reason: (-latest[reason], reason))
    return sorted(ranked[:limit])


def reject_rates(
    samples: Sequence[Sample], interval_s: float, limit: int = MAX_REJECT_TRACES
) -> Series:
    """Rejected ticks per second by reason; beyond `limit` reasons the rest share "other"."""
    shown = reject_reasons(samples, limit)

    def reason_rate(reason: str) -> Callable[[Sample, Sample, float], float]:
        def rate(previous: Sample, current: Sample, seconds: float) -> float:
            return (
                counter_increase(
                    previous.rejected.get(reason, 0.0), current.rejected.get(reason, 0.0)
                )
                / seconds
            )

        return rate

    def other_rate(previous: Sample, current: Sample, seconds: float) -> float:
        others = (set(previous.rejected) | set(current.rejected)) - set(shown)
        return (
            sum(
                counter_increase(previous.rejected.get(r, 0.0), current.rejected.get(r, 0.0))
                for r in others
            )
            / seconds
        )

    derive = {reason: reason_rate(reason) for reason in shown}
    if any(set(sample.rejected) - set(shown) for sample in samples):
        # Reasons are tick field names, `body`, `unavailable`, `unknown_field`: never "other".
        derive[OTHER_REASON] = other_rate
    return per_interval(samples, interval_s, derive)


def flush_increase(previous: Sample, current: Sample) -> tuple[float, float]:
    """(seconds, count) flushed in the interval; a reset of either resets both."""
    count_prev, count_cur = previous.counter("flush_count"), current.counter("flush_count")
    sum_prev, sum_cur = previous.counter("flush_seconds_sum"), current.counter("flush_seconds_sum")
    if count_cur < count_prev or sum_cur < sum_prev:
        return sum_cur, count_cur
    return sum_cur - sum_prev, count_cur - count_prev


def flush_mean(previous: Sample, current: Sample, _seconds: float) -> float | None:
    """Mean flush duration over the interval (s); None when nothing was flushed."""
    total_s, count = flush_increase(previous, current)
    return total_s / count if count > 0 else None


def flush_quantile(q: float) -> Callable[[Sample, Sample, float], float | None]:
    def quantile(previous: Sample, current: Sample, _seconds: float) -> float | None:
        _, count = flush_increase(previous, current)
        buckets = bucket_increase(previous.flush_seconds_le, current.flush_seconds_le)
        return histogram_quantile(q, buckets, total=count)

    return quantile


def view_quantile(q: float) -> Callable[[Sample, Sample, float], float | None]:
    def quantile(previous: Sample, current: Sample, _seconds: float) -> float | None:
        return histogram_quantile(
            q, bucket_increase(previous.view_latency_le, current.view_latency_le)
        )

    return quantile


def alert_latency_quantile(q: float) -> Callable[[Sample, Sample, float], float | None]:
    """Firing → webhook delivered latency over the interval; None when nothing was delivered."""

    def quantile(previous: Sample, current: Sample, _seconds: float) -> float | None:
        return histogram_quantile(
            q,
            bucket_increase(previous.alert_delivery_latency_le, current.alert_delivery_latency_le),
        )

    return quantile


def undelivered_rate(previous: Sample, current: Sample, seconds: float) -> float:
    """Deliveries given up on per second: final failures plus dead (out of attempts)."""
    grown = sum(
        counter_increase(previous.counter(name), current.counter(name))
        for name in UNDELIVERED_COUNTERS
    )
    return grown / seconds


def gauges(samples: Sequence[Sample], interval_s: float, names: Sequence[str]) -> Series:
    """Gauge values at each sample; where samples are missing a None point breaks the line."""
    x: list[datetime] = []
    ys: dict[str, list[float | None]] = {name: [] for name in names}
    previous: Sample | None = None
    for sample in samples:
        if previous is not None:
            seconds = (sample.ts_us - previous.ts_us) / 1e6
            if is_gap(seconds, interval_s):
                x.append(previous.ts + timedelta(seconds=seconds / 2))
                for name in names:
                    ys[name].append(None)
        x.append(sample.ts)
        for name in names:
            ys[name].append(sample.gauges.get(name))
        previous = sample
    return Series(tuple(x), {name: tuple(values) for name, values in ys.items()})


def pipeline_series(history: History) -> PipelineSeries:
    """Every chart of the Pipeline page from one history."""
    samples, interval = history.samples, history.interval_s
    depth_names = ["queue_depth", "outbox_entries", "outbox_pending"]
    if any(sample.gauges.get("calc_b_depth") for sample in samples):
        depth_names.insert(1, "calc_b_depth")  # only with CALC_SPLIT: otherwise always 0
    return PipelineSeries(
        ingest=rates(samples, interval, INGEST_COUNTERS),
        rejects=reject_rates(samples, interval),
        rows_written=rates(samples, interval, ["rows_written"]),
        depths=gauges(samples, interval, depth_names),
        dead_letters=gauges(samples, interval, ["dead_letters"]),
        flush_latency=per_interval(
            samples, interval, {"mean": flush_mean, "p95": flush_quantile(0.95)}
        ),
        view_latency=per_interval(samples, interval, {"p95": view_quantile(0.95)}),
        workers=gauges(samples, interval, ["workers"]),
        alert_firings=rates(samples, interval, FIRING_COUNTERS),
        alert_deliveries=per_interval(
            samples, interval, {DELIVERED: counter_rate(DELIVERED), UNDELIVERED: undelivered_rate}
        ),
        alert_latency=per_interval(
            samples,
            interval,
            {"p50": alert_latency_quantile(0.5), "p95": alert_latency_quantile(0.95)},
        ),
        alert_waiting=gauges(samples, interval, ALERT_WAITING_GAUGES),
    )
