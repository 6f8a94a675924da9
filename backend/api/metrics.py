"""Prometheus metrics of one API process, plus pipeline-wide figures read from Redis at scrape.

A registry per app (not the global one) so several apps can live in one test process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from backend.bus import ledger
from backend.bus.stats import (
    FLUSH_BUCKETS,
    INF,
    REJECTED_PREFIX,
    VIEW_LATENCY_BUCKETS,
    VIEW_LATENCY_PREFIX,
)


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ticks = Counter(
            "tickstream_ingest_ticks",
            "Ticks received by outcome",
            ["outcome", "reason"],
            registry=r,
        )
        self.ingest_latency = Histogram(
            "tickstream_ingest_latency_seconds",
            "Time from request received to acknowledgement",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.group_commit_size = Histogram(
            "tickstream_group_commit_ticks",
            "Ticks per Redis hand-off (group commit)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.queue_depth = Gauge(
            "tickstream_queue_depth", "Messages waiting in the calc queue", registry=r
        )
        self.dead_letters = Gauge(
            "tickstream_dead_letters",
            "Messages in the dead-letter queues of both calc queues",
            registry=r,
        )
        self.outbox_depth = Gauge(
            "tickstream_outbox_entries", "Outbox batches waiting for Postgres", registry=r
        )
        self.outbox_pending = Gauge(
            "tickstream_outbox_pending",
            "Outbox batches read by a flusher, not yet committed",
            registry=r,
        )
        self.rows_written = Gauge(
            "tickstream_rows_written_total", "Rows inserted into md_ticks", registry=r
        )
        self.flush_count = Gauge(
            "tickstream_flushes_total", "Committed Postgres flushes", registry=r
        )
        self.flush_ticks = Gauge(
            "tickstream_flush_ticks_total", "Ticks in committed flushes", registry=r
        )
        self.flush_seconds = Gauge(
            "tickstream_flush_seconds_total", "Time spent in committed flushes", registry=r
        )
        self.flush_le = Gauge(
            "tickstream_flush_seconds_le",
            "Committed flushes no slower than `le` seconds",
            ["le"],
            registry=r,
        )
        self.calc_batches = Gauge(
            "tickstream_calc_batches_total", "Batches applied by calc", registry=r
        )
        self.calc_ticks = Gauge("tickstream_calc_ticks_total", "Ticks applied by calc", registry=r)
        self.late_ticks = Gauge(
            "tickstream_late_ticks_total", "Ticks older than the latest held", registry=r
        )
        self.calc_conflicts = Gauge(
            "tickstream_calc_conflicts_total",
            "calc transactions redone because another worker changed the symbol first",
            registry=r,
        )
        self.gaps_opened = Gauge("tickstream_gaps_opened_total", "Sequence gaps opened", registry=r)
        self.gaps_closed = Gauge("tickstream_gaps_closed_total", "Sequence gaps closed", registry=r)
        self.pipeline_ticks = Gauge(
            "tickstream_pipeline_ticks_total",
            "Ticks answered by all API replicas, by outcome (and reason, for rejections)",
            ["outcome", "reason"],
            registry=r,
        )
        self.view_latency_le = Gauge(
            "tickstream_view_latency_seconds_le",
            "Ticks (or calc-b views) whose ingest→view latency was no more than `le` seconds",
            ["le"],
            registry=r,
        )
        self.sse_dropped = Counter(
            "tickstream_sse_dropped_events", "Events dropped for slow SSE clients", registry=r
        )

    def set_pipeline(
        self, depth: int, dead: int, outbox: int, pending: int, counters: dict[str, float]
    ) -> None:
        self.queue_depth.set(depth)
        self.dead_letters.set(dead)
        self.outbox_depth.set(outbox)
        self.outbox_pending.set(pending)
        self.rows_written.set(counters.get(ledger.ROWS_WRITTEN, 0))
        self.flush_count.set(counters.get(ledger.FLUSH_COUNT, 0))
        self.flush_ticks.set(counters.get(ledger.FLUSH_TICKS_SUM, 0))
        self.flush_seconds.set(counters.get(ledger.FLUSH_SECONDS_SUM, 0))
        for bound in FLUSH_BUCKETS:
            self.flush_le.labels(le=str(bound)).set(counters.get(f"flush_seconds_le_{bound}", 0))
        self.calc_batches.set(counters.get(ledger.CALC_BATCHES, 0))
        self.calc_ticks.set(counters.get(ledger.CALC_TICKS, 0))
        self.late_ticks.set(counters.get(ledger.LATE_TICKS, 0))
        self.calc_conflicts.set(counters.get(ledger.CALC_CONFLICTS, 0))
        self.gaps_opened.set(counters.get(ledger.GAPS_OPENED, 0))
        self.gaps_closed.set(counters.get(ledger.GAPS_CLOSED, 0))
        for outcome in ("accepted", "duplicate", "conflict", "shed"):
            self.pipeline_ticks.labels(outcome=outcome, reason="").set(
                counters.get(f"ingest_{outcome}", 0)
            )
        for name, value in counters.items():
            if name.startswith(REJECTED_PREFIX):
                reason = name.removeprefix(REJECTED_PREFIX)
                self.pipeline_ticks.labels(outcome="rejected", reason=reason).set(value)
        for label in (*(str(b) for b in VIEW_LATENCY_BUCKETS), INF):
            self.view_latency_le.labels(le=label).set(counters.get(VIEW_LATENCY_PREFIX + label, 0))
