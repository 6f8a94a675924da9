"""What the Pipeline page shows besides its charts (`ui.pipeline_series`): headline figures (the
pipeline's and the alerts'), the digest of one `/stats/history` body, and the page's number
formats. Pure: no Streamlit, no I/O, unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ui.pipeline_series import (
    DELIVERED,
    PipelineSeries,
    flush_increase,
    pairs,
    pipeline_series,
)
from ui.stats_samples import (
    Buckets,
    Sample,
    add_buckets,
    bucket_increase,
    counter_increase,
    histogram_quantile,
    parse_history,
)


@dataclass(frozen=True, slots=True)
class Headline:
    """The page's headline figures; None = not known (no sample, or nothing observed)."""

    ingest_rate: float | None = None
    accepted_total: float | None = None
    queue_depth: float | None = None
    outbox_entries: float | None = None
    outbox_pending: float | None = None
    dead_letters: float | None = None
    view_p95_s: float | None = None
    flush_p95_s: float | None = None


@dataclass(frozen=True, slots=True)
class AlertHeadline:
    """The Alerts part's headline: totals since stats began, what waits now, recent rates and
    latencies; None = not known (no sample, a sample from before alerts, nothing observed)."""

    fired_total: float | None = None
    test_fired_total: float | None = None
    fired_rate: float | None = None
    delivered_total: float | None = None
    retries_total: float | None = None
    failed_total: float | None = None
    dead_total: float | None = None
    deliveries_waiting: float | None = None
    evaluations_waiting: float | None = None
    history_waiting: float | None = None
    delivery_p50_s: float | None = None
    delivery_p95_s: float | None = None


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """A stats history digested once, for every session: the charts' data and the headline."""

    interval_s: float
    retention_s: int | None
    sample_count: int
    series: PipelineSeries
    head: Headline
    alerts: AlertHeadline = field(default_factory=AlertHeadline)


@dataclass(frozen=True, slots=True)
class PipelineSnapshot:
    """What the page fetched from the backend, failures included (returned, so they are cached).

    `history_missing` is a backend without `/stats/history` (404): an info, not an outage.
    """

    readiness: dict[str, Any] | None = None
    readiness_error: str | None = None
    api_latency_ms: float | None = None
    stats: PipelineStats | None = None
    history_error: str | None = None
    history_missing: bool = False


# --- headline -----------------------------------------------------------------------------------


def window(samples: Sequence[Sample], seconds: float) -> tuple[Sample, ...]:
    """The samples of the last `seconds` before the newest one (both ends included)."""
    if not samples:
        return ()
    since = samples[-1].ts_us - round(seconds * 1_000_000)
    return tuple(sample for sample in samples if sample.ts_us >= since)


def window_rate(samples: Sequence[Sample], name: str) -> float | None:
    """A counter's mean rate across the samples given (resets handled interval by interval)."""
    intervals = list(pairs(samples))
    if not intervals:
        return None
    grown = sum(counter_increase(a.counter(name), b.counter(name)) for a, b, _ in intervals)
    return grown / ((samples[-1].ts_us - samples[0].ts_us) / 1e6)


def window_quantile(
    q: float, samples: Sequence[Sample], buckets_of: Callable[[Sample], Buckets]
) -> float | None:
    """A quantile of everything observed across the samples given."""
    total: dict[str, float] = {}
    for previous, current, _ in pairs(samples):
        total = add_buckets(total, bucket_increase(buckets_of(previous), buckets_of(current)))
    return histogram_quantile(q, total) if total else None


def window_flush_quantile(q: float, samples: Sequence[Sample]) -> float | None:
    buckets: dict[str, float] = {}
    count = 0.0
    for previous, current, _ in pairs(samples):
        buckets = add_buckets(
            buckets, bucket_increase(previous.flush_seconds_le, current.flush_seconds_le)
        )
        count += flush_increase(previous, current)[1]
    return histogram_quantile(q, buckets, total=count) if count > 0 else None


def headline(
    samples: Sequence[Sample], rate_window_s: float = 10.0, latency_window_s: float = 60.0
) -> Headline:
    """Headline figures from the newest sample and the last few seconds/minute before it."""
    if not samples:
        return Headline()
    latest = samples[-1]
    recent = window(samples, latency_window_s)
    return Headline(
        ingest_rate=window_rate(window(samples, rate_window_s), "ingest_accepted"),
        accepted_total=latest.counter("ingest_accepted"),
        queue_depth=latest.gauges.get("queue_depth"),
        outbox_entries=latest.gauges.get("outbox_entries"),
        outbox_pending=latest.gauges.get("outbox_pending"),
        dead_letters=latest.gauges.get("dead_letters"),
        view_p95_s=window_quantile(0.95, recent, lambda s: s.view_latency_le),
        flush_p95_s=window_flush_quantile(0.95, recent),
    )


def alert_headline(
    samples: Sequence[Sample], rate_window_s: float = 60.0, latency_window_s: float = 300.0
) -> AlertHeadline:
    """The Alerts headline from the newest sample and the minutes before it.

    Firings and deliveries are sparse next to ticks, so their windows are longer than the
    ingest figures': over 10 s a rule that fires once a minute would read 0 or 0.1/s at random.
    """
    if not samples:
        return AlertHeadline()
    latest = samples[-1]
    recent = window(samples, latency_window_s)

    def latency(q: float) -> float | None:
        return window_quantile(q, recent, lambda s: s.alert_delivery_latency_le)

    return AlertHeadline(
        fired_total=latest.counter("alerts_fired"),
        test_fired_total=latest.counter("alerts_test_fired"),
        fired_rate=window_rate(window(samples, rate_window_s), "alerts_fired"),
        delivered_total=latest.counter(DELIVERED),
        retries_total=latest.counter("alerts_delivery_retries"),
        failed_total=latest.counter("alerts_delivery_failed"),
        dead_total=latest.counter("alerts_delivery_dead"),
        deliveries_waiting=latest.gauges.get("alert_deliveries_waiting"),
        evaluations_waiting=latest.gauges.get("alert_evaluations_waiting"),
        history_waiting=latest.gauges.get("alert_history_entries"),
        delivery_p50_s=latency(0.5),
        delivery_p95_s=latency(0.95),
    )


def digest(body: Mapping[str, Any]) -> PipelineStats:
    """Everything the page shows from one `/stats/history` body."""
    history = parse_history(body)
    return PipelineStats(
        interval_s=history.interval_s,
        retention_s=history.retention_s,
        sample_count=len(history.samples),
        series=pipeline_series(history),
        head=headline(history.samples),
        alerts=alert_headline(history.samples),
    )


# --- formatting ---------------------------------------------------------------------------------


def format_rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.1f}/s" if value < 100 else f"{value:,.0f}/s"


def format_count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def format_seconds(value: float | None) -> str:
    """Latencies in the unit a human reads them in."""
    if value is None:
        return "—"
    if value < 1.0:
        return f"{value * 1000:,.1f} ms"
    return f"{value:,.2f} s"


def is_not_found(message: str | None) -> bool:
    """Whether a BackendError message reports a 404 (an older backend without the endpoint)."""
    return bool(message) and "HTTP 404" in (message or "")
