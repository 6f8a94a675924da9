"""The feeder's /metrics and /health/*, served inside its own event loop (FEEDER_METRICS_PORT).

Metrics are read from the delivery counters at scrape (no second set of counters to keep in
step), plus the process's CPU and memory. Readiness means "ticks are getting through": the last
POST got an answer recently, or the feeder is paused (sending nothing is then its job).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backend.ops.access import MetricsAccess
from backend.ops.app import build_ops_app
from backend.ops.server import serve_ops
from backend.settings import FeederSettings
from feeder.runner import Runner

OPS_HOST = "0.0.0.0"  # Prometheus may scrape from another host; /metrics applies the access rule
ANSWER_FRESH_S = 10.0  # an answer older than this while sending means the API is not reached


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


def feeder_readiness(
    *, now: float, started_at: float, last_answer_at: float | None, paused: bool
) -> Readiness:
    """Pure (monotonic times passed in). A feeder just started gets the same grace as an answer."""
    if paused:
        return Readiness(True, "paused")
    latest = max(started_at, last_answer_at if last_answer_at is not None else started_at)
    age = now - latest
    if age <= ANSWER_FRESH_S:
        return Readiness(True, "answered" if last_answer_at is not None else "starting")
    return Readiness(False, f"no answer from the API for {age:.0f} s")


class FeederCollector(Collector):
    """`tickstream_feeder_ticks_total{outcome}` and the pacing gauges, from the runner now."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def collect(self) -> Iterator[Metric]:
        ticks = CounterMetricFamily(
            "tickstream_feeder_ticks",
            "Ticks by what became of them (feeder.client.Counters: sent, accepted, ...)",
            labels=["outcome"],
        )
        for outcome, count in asdict(self._runner.counters).items():
            ticks.add_metric([outcome], count)
        yield ticks
        status = self._runner.status()
        for name, help_text, value in (
            ("tickstream_feeder_target_tps", "Ticks/s the config asks for", status.target_tps),
            ("tickstream_feeder_achieved_tps", "Ticks answered/s lately", status.achieved_tps),
            ("tickstream_feeder_buffered", "Ticks waiting to be sent", status.buffered),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


class FeederOps:
    """The ops server task of one feeder: `start` beside the runner, `stop` after it."""

    def __init__(self, settings: FeederSettings, runner: Runner) -> None:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        registry.register(FeederCollector(runner))
        started_at = time.monotonic()

        async def answering() -> dict[str, str]:
            state = feeder_readiness(
                now=time.monotonic(),
                started_at=started_at,
                last_answer_at=runner.delivery.client.last_answer_at,
                paused=runner.target_tps() <= 0,
            )
            if not state.ready:
                raise RuntimeError(state.reason)
            return {"reason": state.reason}

        self._app = build_ops_app(
            service="feeder",
            checks={"api": answering},
            render_metrics=lambda: generate_latest(registry),
            access=MetricsAccess.from_settings(settings),
        )
        self._port = settings.feeder_metrics_port
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            serve_ops(self._app, OPS_HOST, self._port, self._stopping), name="feeder-ops"
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
