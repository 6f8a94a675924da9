"""Pure shaping of the pipeline's stats samples (`GET /stats`, `/stats/history`) for the UI.

The backend keeps cumulative, pipeline-wide counters and histograms (Prometheus style), sampled
every `interval_s`. Everything an operator wants to see is derived here from consecutive samples,
with no Streamlit and no I/O, so the arithmetic is unit-tested:

- rates divide a counter's increase by the REAL time between the two samples (the sampler drifts);
- a counter that goes DOWN means Redis lost its data or was reset: the new value is taken as the
  increase since the reset (as Prometheus' `rate()` does), never a negative rate;
- an interval much longer than `interval_s` means samples are missing: it yields None, a gap in
  the line, rather than an average that would look like measured data;
- quantiles come from the deltas of cumulative buckets, interpolated linearly within the bucket
  the rank falls in (Prometheus' `histogram_quantile`), None when nothing was observed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# An interval longer than this many expected intervals has at least one sample missing.
GAP_FACTOR = 1.5
# Reject reasons drawn as their own line; the rest are summed into "other" (bounded traces).
MAX_REJECT_TRACES = 4
OTHER_REASON = "other"

INGEST_COUNTERS = ("ingest_accepted", "ingest_duplicate", "ingest_conflict")

Buckets = Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Sample:
    """One pipeline-wide stats sample; every section holds plain floats (missing → absent)."""

    ts_us: int
    counters: Mapping[str, float] = field(default_factory=dict)
    rejected: Mapping[str, float] = field(default_factory=dict)
    flush_seconds_le: Buckets = field(default_factory=dict)
    view_latency_le: Buckets = field(default_factory=dict)
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
class HealthPart:
    """One part of the pipeline as a badge: `ok` None means not known (the API did not answer)."""

    name: str
    ok: bool | None
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """A stats history digested once, for every session: the charts' data and the headline."""

    interval_s: float
    retention_s: int | None
    sample_count: int
    series: PipelineSeries
    head: Headline


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


# --- parsing ----------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
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
        number = _number(value)
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
    interval = _number(body.get("interval_s"))
    if interval is None or interval <= 0:
        interval = infer_interval(samples) or 1.0
    retention = _number(body.get("retention_s"))
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


# --- series -------------------------------------------------------------------------------------


def is_gap(seconds: float, interval_s: float) -> bool:
    """True when the time between two samples means at least one sample is missing."""
    return seconds > GAP_FACTOR * interval_s


def _pairs(samples: Sequence[Sample]) -> Iterable[tuple[Sample, Sample, float]]:
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
    for previous, current, seconds in _pairs(samples):
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


def _flush_increase(previous: Sample, current: Sample) -> tuple[float, float]:
    """(seconds, count) flushed in the interval; a reset of either resets both."""
    count_prev, count_cur = previous.counter("flush_count"), current.counter("flush_count")
    sum_prev, sum_cur = previous.counter("flush_seconds_sum"), current.counter("flush_seconds_sum")
    if count_cur < count_prev or sum_cur < sum_prev:
        return sum_cur, count_cur
    return sum_cur - sum_prev, count_cur - count_prev


def flush_mean(previous: Sample, current: Sample, _seconds: float) -> float | None:
    """Mean flush duration over the interval (s); None when nothing was flushed."""
    total_s, count = _flush_increase(previous, current)
    return total_s / count if count > 0 else None


def flush_quantile(q: float) -> Callable[[Sample, Sample, float], float | None]:
    def quantile(previous: Sample, current: Sample, _seconds: float) -> float | None:
        _, count = _flush_increase(previous, current)
        buckets = bucket_increase(previous.flush_seconds_le, current.flush_seconds_le)
        return histogram_quantile(q, buckets, total=count)

    return quantile


def view_quantile(q: float) -> Callable[[Sample, Sample, float], float | None]:
    def quantile(previous: Sample, current: Sample, _seconds: float) -> float | None:
        return histogram_quantile(
            q, bucket_increase(previous.view_latency_le, current.view_latency_le)
        )

    return quantile


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
    )


# --- headline -----------------------------------------------------------------------------------


def window(samples: Sequence[Sample], seconds: float) -> tuple[Sample, ...]:
    """The samples of the last `seconds` before the newest one (both ends included)."""
    if not samples:
        return ()
    since = samples[-1].ts_us - round(seconds * 1_000_000)
    return tuple(sample for sample in samples if sample.ts_us >= since)


def window_rate(samples: Sequence[Sample], name: str) -> float | None:
    """A counter's mean rate across the samples given (resets handled interval by interval)."""
    pairs = list(_pairs(samples))
    if not pairs:
        return None
    grown = sum(counter_increase(a.counter(name), b.counter(name)) for a, b, _ in pairs)
    return grown / ((samples[-1].ts_us - samples[0].ts_us) / 1e6)


def window_quantile(
    q: float, samples: Sequence[Sample], buckets_of: Callable[[Sample], Buckets]
) -> float | None:
    """A quantile of everything observed across the samples given."""
    total: dict[str, float] = {}
    for previous, current, _ in _pairs(samples):
        total = add_buckets(total, bucket_increase(buckets_of(previous), buckets_of(current)))
    return histogram_quantile(q, total) if total else None


def window_flush_quantile(q: float, samples: Sequence[Sample]) -> float | None:
    buckets: dict[str, float] = {}
    count = 0.0
    for previous, current, _ in _pairs(samples):
        buckets = add_buckets(
            buckets, bucket_increase(previous.flush_seconds_le, current.flush_seconds_le)
        )
        count += _flush_increase(previous, current)[1]
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


def digest(body: Mapping[str, Any]) -> PipelineStats:
    """Everything the page shows from one `/stats/history` body."""
    history = parse_history(body)
    return PipelineStats(
        interval_s=history.interval_s,
        retention_s=history.retention_s,
        sample_count=len(history.samples),
        series=pipeline_series(history),
        head=headline(history.samples),
    )


# --- health -------------------------------------------------------------------------------------


def _latency(check: Mapping[str, Any]) -> str:
    latency = _number(check.get("latency_ms"))
    return f"{latency:.1f} ms" if latency is not None else ""


def health_parts(
    readiness: Mapping[str, Any] | None,
    api_error: str | None = None,
    api_latency_ms: float | None = None,
) -> list[HealthPart]:
    """API, Redis, Postgres and workers as badges, from `GET /health/readiness`.

    The API is up when it answered at all (a 503 naming what failed is an answer). Without an
    answer nothing is known about the other parts, which is said rather than shown as down.
    """
    if readiness is None:
        reason = api_error or "No answer from the backend."
        unknown = "unknown: the API did not answer"
        return [
            HealthPart("API", False, "down", reason),
            HealthPart("Redis", None, "unknown", unknown),
            HealthPart("Postgres", None, "unknown", unknown),
            HealthPart("Workers", None, "unknown", unknown),
        ]
    checks = readiness.get("checks")
    checks = checks if isinstance(checks, Mapping) else {}
    api_detail = f"{api_latency_ms:.0f} ms round trip" if api_latency_ms is not None else ""
    parts = [HealthPart("API", True, "ok", api_detail)]
    for name, key in (("Redis", "redis"), ("Postgres", "postgres")):
        check = checks.get(key)
        if not isinstance(check, Mapping):
            parts.append(HealthPart(name, None, "unknown", "not reported by the backend"))
        elif check.get("ok"):
            parts.append(HealthPart(name, True, "ok", _latency(check)))
        else:
            parts.append(HealthPart(name, False, "down", str(check.get("error") or "failed")))
    broker = checks.get("broker")
    if not isinstance(broker, Mapping):
        parts.append(HealthPart("Workers", None, "unknown", "not reported by the backend"))
    elif not broker.get("ok"):
        parts.append(HealthPart("Workers", False, "down", str(broker.get("error") or "failed")))
    else:
        workers = int(_number(broker.get("workers")) or 0)
        depth = _number(broker.get("queue_depth"))
        detail = f"queue depth {depth:,.0f}" if depth is not None else ""
        if workers >= 1:
            parts.append(HealthPart("Workers", True, f"{workers} live", detail))
        else:
            parts.append(
                HealthPart("Workers", False, "0 live", f"no live worker · {detail}".strip(" ·"))
            )
    return parts


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
