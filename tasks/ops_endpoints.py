"""/metrics and /health/* of a Dramatiq service (`worker`, `alerts`, `history`), for all its worker
processes.

A service runs N worker processes; Prometheus wants one target. Dramatiq's own Prometheus
middleware already counts messages in multiprocess mode and serves them from a *fork* (a process
Dramatiq's CLI starts beside the workers). We keep its counters and replace its bare exposition
server with our ops app (liveness, readiness, the /metrics access rule, JSON logs), and add what
each worker process costs: CPU seconds and resident memory, as live-only gauges (a dead worker's
series disappears with it).

Readiness is the fork's own view of the bus: a service whose Redis does not answer a PING within
the deadline cannot take messages, whatever its workers are doing. The `worker` service also
reports PostgreSQL, as information only (`degraded`): without it calc and the views go on and the
outbox keeps the rows until it is back, so a lost Postgres must not take the workers out of
rotation. `history` reports it the same way: its replays read the stored ticks and wait for
PostgreSQL to come back, but taking it out of rotation would not bring it back sooner.
`alerts` never touches PostgreSQL and does not report it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import prometheus as dramatiq_prometheus

from backend.ops.multiprocess import metrics_dir
from backend.settings import WorkerSettings, get_worker_settings

if TYPE_CHECKING:  # imported for real only once the multiprocess environment is set
    from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 1.0  # how stale a worker's CPU/RSS may be at scrape
READS_POSTGRES = frozenset({"worker", "history"})  # reported as information, never readiness
OPS_HOST = "0.0.0.0"  # Prometheus may scrape from another host; /metrics applies the access rule


def service_port(settings: WorkerSettings, service: str) -> int:
    return settings.metrics_port(service)


class OpsEndpoints(dramatiq_prometheus.Prometheus):
    """Dramatiq's message metrics, our per-process gauges, and our fork instead of its server."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    @property
    def forks(self) -> list[Any]:
        return [FORKS[self.service]]

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        super().after_process_boot(broker)
        cpu, rss = worker_process_gauges()  # after the multiprocess environment is set
        threading.Thread(
            target=_sample_forever,
            args=(cpu.labels(self.service), rss.labels(self.service)),
            name="ops-sampler",
            daemon=True,
        ).start()


def worker_process_gauges(registry: CollectorRegistry | None = None) -> tuple[Gauge, Gauge]:
    """CPU seconds and RSS of one worker process: `liveall` keeps one series per live pid."""
    from prometheus_client import REGISTRY, Gauge

    registry = REGISTRY if registry is None else registry
    cpu = Gauge(
        "tickstream_worker_cpu_seconds",
        "CPU seconds (user + system) used by this worker process",
        ["service"],
        multiprocess_mode="liveall",
        registry=registry,
    )
    rss = Gauge(
        "tickstream_worker_resident_memory_bytes",
        "Resident memory of this worker process",
        ["service"],
        multiprocess_mode="liveall",
        registry=registry,
    )
    return cpu, rss


def _sample_forever(cpu: Any, rss: Any) -> None:
    import psutil

    me = psutil.Process()
    stop = threading.Event()
    while True:
        times = me.cpu_times()
        cpu.set(times.user + times.system)
        rss.set(me.memory_info().rss)
        stop.wait(SAMPLE_INTERVAL_S)


def add_ops_endpoints(broker: dramatiq.Broker, settings: WorkerSettings, service: str) -> None:
    """Add the middleware when this service serves its endpoints and its entry prepared the
    metrics directory (`python -m tasks`); a bare `python -m dramatiq` run serves none."""
    port = service_port(settings, service)
    if port == 0:
        return
    if str(metrics_dir(service, port)) != dramatiq_prometheus.DB_PATH:
        log.warning("no /metrics for %s: start it with `python -m tasks %s`", service, service)
        return
    broker.add_middleware(OpsEndpoints(service))


# --- the fork -------------------------------------------------------------------------------
def _serve(service: str) -> int:
    """Runs in the fork: JSON logs, then the ops app until Dramatiq stops the fork."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    from redis.asyncio import Redis

    from backend.bus.keys import Keys
    from backend.bus.probes import Probes
    from backend.logs import configure_logging
    from backend.ops.access import MetricsAccess
    from backend.ops.app import build_ops_app
    from backend.ops.server import serve_ops
    from backend.storage.probe import ping_postgres

    settings = get_worker_settings()
    configure_logging(settings, service=service)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=dramatiq_prometheus.DB_PATH)

    async def main() -> None:
        redis = Redis.from_url(settings.effective_redis_url, socket_timeout=2)
        probes = Probes(redis, Keys.from_settings(settings))

        async def redis_ping() -> None:
            await probes.check_redis()

        async def postgres_ping() -> None:
            await ping_postgres(settings.psycopg_url)

        app = build_ops_app(
            service=service,
            checks={"redis": redis_ping},
            info_checks={"postgres": postgres_ping} if service in READS_POSTGRES else {},
            render_metrics=lambda: generate_latest(registry),
            access=MetricsAccess.from_settings(settings),
        )
        # Dramatiq's parent sends SIGTERM (sometimes twice, with a process-group kill): each one
        # only asks the server to close, so the fork always ends through its own shutdown.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await serve_ops(app, OPS_HOST, service_port(settings, service), stopping)
        finally:
            await redis.aclose()

    asyncio.run(main())
    return 0


def serve_worker_ops() -> int:
    return _serve("worker")


def serve_alerts_ops() -> int:
    return _serve("alerts")


def serve_history_ops() -> int:
    return _serve("history")


# One per service of `python -m tasks` (tasks.__main__.SERVICES): a service without its fork
# would crash every worker process at boot whenever its metrics port is set.
FORKS = {"worker": serve_worker_ops, "alerts": serve_alerts_ops, "history": serve_history_ops}
