"""Prometheus metrics of one API process, plus pipeline-wide figures read from Redis at scrape.

A registry per app (not the global one) so several apps can live in one test process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from backend.bus import ledger
from backend.bus.alert_delivery import DELIVERY_LATENCY_BUCKETS, DELIVERY_LATENCY_PREFIX
from backend.bus.stats import (
    FLUSH_BUCKETS,
    INF,
    REJECTED_PREFIX,
    VIEW_LATENCY_BUCKETS,
    VIEW_LATENCY_PREFIX,
)

# Pipeline-wide figures are Gauges, not Counters: each is set from Redis at scrape, never
# incremented here. A table per group keeps the names and help texts in one readable place;
# the groups are declared in the order /metrics lists them.
_GaugeTable = tuple[tuple[str, str, str], ...]  # (key, metric name, help text)

# What is waiting where now; keyed by the `set_pipeline` argument that carries it.
_BACKLOG_GAUGES: _GaugeTable = (
    ("depth", "tickstream_queue_depth", "Messages waiting in the calc queue"),
    ("dead", "tickstream_dead_letters", "Messages in the dead-letter queues of both calc queues"),
    ("outbox", "tickstream_outbox_entries", "Outbox batches waiting for Postgres"),
    ("pending", "tickstream_outbox_pending", "Outbox batches read by a flusher, not yet committed"),
)

# Running totals, each keyed by the ledger counter it shows.
_FLUSH_TOTALS: _GaugeTable = (
    (ledger.ROWS_WRITTEN, "tickstream_rows_written_total", "Rows inserted into md_ticks"),
    (ledger.FLUSH_COUNT, "tickstream_flushes_total", "Committed Postgres flushes"),
    (ledger.FLUSH_TICKS_SUM, "tickstream_flush_ticks_total", "Ticks in committed flushes"),
    (ledger.FLUSH_SECONDS_SUM, "tickstream_flush_seconds_total", "Time spent in committed flushes"),
)
_CALC_TOTALS: _GaugeTable = (
    (ledger.CALC_BATCHES, "tickstream_calc_batches_total", "Batches applied by calc"),
    (ledger.CALC_TICKS, "tickstream_calc_ticks_total", "Ticks applied by calc"),
    (ledger.CALC_STEPS, "tickstream_calc_steps_total",
     "calc transactions committed (one per symbol of a step over the messages taken together)"),
    (ledger.LATE_TICKS, "tickstream_late_ticks_total", "Ticks older than the latest held"),
    (
        ledger.CALC_CONFLICTS,
        "tickstream_calc_conflicts_total",
        "calc transactions redone because another worker changed the symbol first",
    ),
    (ledger.GAPS_OPENED, "tickstream_gaps_opened_total", "Sequence gaps opened"),
    (ledger.GAPS_CLOSED, "tickstream_gaps_closed_total", "Sequence gaps closed"),
    (ledger.REBUILDS_STARTED, "tickstream_rebuilds_started_total", "Symbol state rebuilds begun"),
    (ledger.REBUILDS_FINISHED, "tickstream_rebuilds_finished_total",
     "Symbol state rebuilds swapped in"),
    (ledger.REBUILD_TICKS_READ, "tickstream_rebuild_ticks_read_total",
     "Ticks read from PostgreSQL + the outbox by rebuilds"),
    (ledger.REBUILD_BUFFERED, "tickstream_rebuild_buffered_total",
     "Ticks calc kept in a rebuild fence instead of merging"),
    (ledger.REBUILD_SKIPPED, "tickstream_rebuild_skipped_total",
     "Ticks calc dropped because a rebuild had already counted them"),
)  # fmt: skip

_ALERT_TOTALS: _GaugeTable = (
    ("alerts_observations", "tickstream_alert_observations_total", "Observations evaluated"),
    ("alerts_evaluations", "tickstream_alert_evaluations_total", "Evaluation transactions"),
    (
        "alerts_rules_checked",
        "tickstream_alert_rules_checked_total",
        "Rule conditions computed (the evaluation cost; rules far from the price cost nothing)",
    ),
    ("alerts_fired", "tickstream_alerts_fired_total", "Rule firings (each crossing once)"),
    ("alerts_test_fired", "tickstream_alerts_test_fired_total", "Test firings"),
    ("alerts_delivered", "tickstream_alert_deliveries_delivered_total", "Webhooks delivered"),
    ("alerts_delivery_retries", "tickstream_alert_delivery_retries_total", "Attempts to retry"),
    ("alerts_delivery_failed", "tickstream_alert_deliveries_failed_total", "Final failures"),
    ("alerts_delivery_dead", "tickstream_alert_deliveries_dead_total", "Out of attempts"),
    ("alerts_delivery_parked", "tickstream_alert_delivery_parked_total",
     "Jobs parked because their host had no free slot"),
    ("alerts_bad_observations", "tickstream_alert_bad_observations_total",
     "Undecodable observations skipped"),
)  # fmt: skip
_ALERT_BACKLOG: _GaugeTable = (
    ("evaluate", "tickstream_alert_evaluations_waiting", "Messages waiting in alerts.evaluate"),
    ("deliver", "tickstream_alert_deliveries_waiting", "Webhook jobs waiting (incl. retries)"),
    ("parked", "tickstream_alert_deliveries_parked", "Webhook jobs parked for a free host slot"),
    ("history", "tickstream_alert_history_entries", "Alert records waiting for PostgreSQL"),
)


def _gauges(table: _GaugeTable, registry: CollectorRegistry) -> dict[str, Gauge]:
    """One unlabelled gauge a row, registered in the table's order, keyed by the row's key."""
    return {key: Gauge(name, help_text, registry=registry) for key, name, help_text in table}


class ProcessRestartsCollector(Collector):
    """`tickstream_process_restarts_total{process}`: the launcher's restarts, read at scrape.

    A collector rather than a `Counter`: the count lives in Redis (the launcher writes it), so
    it is set, never incremented here, yet it is a counter (only ever goes up) and Prometheus
    should treat it as one (`rate()`, `increase()`), which a `Gauge` would not declare.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def set(self, counts: Mapping[str, int]) -> None:
        self._counts = dict(counts)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tickstream_process_restarts",
            "Restarts of each Procfile process by the make-run launcher after it died",
            labels=["process"],
        )
        for process, count in sorted(self._counts.items()):
            family.add_metric([process], count)
        yield family


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
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
        self.backlog = _gauges(_BACKLOG_GAUGES, r)
        self.flush_totals = _gauges(_FLUSH_TOTALS, r)
        self.flush_le = Gauge(
            "tickstream_flush_seconds_le",
            "Committed flushes no slower than `le` seconds",
            ["le"],
            registry=r,
        )
        self.calc_totals = _gauges(_CALC_TOTALS, r)
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
        self.alert_totals = _gauges(_ALERT_TOTALS, r)
        self.alert_backlog = _gauges(_ALERT_BACKLOG, r)
        self.alert_delivery_le = Gauge(
            "tickstream_alert_delivery_latency_seconds_le",
            "Webhooks delivered no more than `le` seconds after their firing committed",
            ["le"],
            registry=r,
        )
        self.process_restarts = ProcessRestartsCollector()
        r.register(self.process_restarts)
        # Children resolved once: `.labels()` takes a lock and builds a key on every call, and
        # the ingest path would pay that per request.
        self._ticks_by_outcome = {
            outcome: self.ticks.labels(outcome=outcome, reason="")
            for outcome in ("accepted", "duplicate", "conflict")
        }
        self.tick_latency = self.ingest_latency.labels(endpoint="tick")
        self.ticks_latency = self.ingest_latency.labels(endpoint="ticks")

    def count_group_commit(self, statuses: Iterable[str]) -> None:
        """One group commit's size and its outcomes: once per Redis hand-off, not per request."""
        by_status: dict[str, int] = {}
        for status in statuses:
            by_status[status] = by_status.get(status, 0) + 1
        self.group_commit_size.observe(sum(by_status.values()))
        for status, count in by_status.items():
            self._ticks_by_outcome[status].inc(count)

    def set_pipeline(
        self, depth: int, dead: int, outbox: int, pending: int, counters: dict[str, float]
    ) -> None:
        backlog = {"depth": depth, "dead": dead, "outbox": outbox, "pending": pending}
        for name, gauge in self.backlog.items():
            gauge.set(backlog[name])
        for counter, gauge in (*self.flush_totals.items(), *self.calc_totals.items()):
            gauge.set(counters.get(counter, 0))
        for bound in FLUSH_BUCKETS:
            self.flush_le.labels(le=str(bound)).set(counters.get(f"flush_seconds_le_{bound}", 0))
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
        for counter, gauge in self.alert_totals.items():
            gauge.set(counters.get(counter, 0))
        for label in (*(str(b) for b in DELIVERY_LATENCY_BUCKETS), INF):
            self.alert_delivery_le.labels(le=label).set(
                counters.get(DELIVERY_LATENCY_PREFIX + label, 0)
            )

    def set_alert_backlog(self, evaluate: int, deliver: int, parked: int, history: int) -> None:
        waiting = {"evaluate": evaluate, "deliver": deliver, "parked": parked, "history": history}
        for name, gauge in self.alert_backlog.items():
            gauge.set(waiting[name])
