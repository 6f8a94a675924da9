"""The orchestrator API: `create_app(settings)`; connections opened and closed by `lifespan`.

Run with `uvicorn backend.api.app:create_app --factory`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.alert_mirror_sync import RuleMirrorSync
from backend.api.deps import AppState
from backend.api.errors import (
    ApiError,
    api_error_handler,
    http_exception_handler,
    request_validation_handler,
)
from backend.api.failures import add_failure_handlers
from backend.api.metrics import ApiMetrics
from backend.api.routes import (
    admin,
    alerts,
    candles,
    feeder,
    health,
    ingest,
    internal,
    metrics,
    replays,
    stats,
    stream,
    symbols,
)
from backend.api.stats_sampler import StatsSampler
from backend.api.tracing import TraceMiddleware
from backend.bus import events
from backend.bus.alert_firings import AlertFirings
from backend.bus.alert_rules import AsyncAlertRuleMirror
from backend.bus.dead_letters import DeadLetters
from backend.bus.event_bus import EventBus
from backend.bus.feeder_registry import FeederRegistry
from backend.bus.group_commit import GroupCommitter, TraceSpans
from backend.bus.ingest import IngestScript, Outcome
from backend.bus.keys import CALC_B_QUEUE, Keys
from backend.bus.ledger import LedgerReader
from backend.bus.outbox_reader import OutboxReader
from backend.bus.probes import Probes
from backend.bus.process_restarts import ProcessRestartsReader
from backend.bus.realtime import Ring
from backend.bus.rebuild_store import RebuildRequests
from backend.bus.replays import Replays
from backend.bus.samples import SamplesStore
from backend.bus.views import ViewStore
from backend.core.ticks import Tick
from backend.logs import configure_logging
from backend.runtime import freeze_startup_heap
from backend.settings import ApiSettings, get_api_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Tickstream's orchestrator API. Feeders POST ticks (HTTP Basic); they are de-duplicated by
`event_id`, handed to Redis (Dramatiq queue `ticks.received` + persistence outbox) in group-
committed batches and acknowledged. Dashboards read views, history and candles here; live
events come from the realtime gateway (`GET /stream` redirects there).
"""


def create_app(
    settings: ApiSettings | None = None, dedup_clock: Callable[[], float] = time.time
) -> FastAPI:
    """`dedup_clock`: arrival time for the de-dup generations (tests inject it)."""
    settings = settings or get_api_settings()
    metrics_ = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        keys = Keys.from_settings(settings)
        # open(wait=False): the API must start and ingest even while Postgres is down.
        pool = AsyncConnectionPool(
            settings.psycopg_url, min_size=1, max_size=10, open=False, kwargs={"connect_timeout": 3}
        )
        await pool.open(wait=False)
        script = IngestScript(
            redis, keys, settings.dedup_ttl, settings.max_backlog,
            generations=settings.dedup_generations, shards=settings.dedup_shards,
            clock=dedup_clock,
        )  # fmt: skip
        try:  # refuses to start on a layout change; Redis down: the first ingest prepares
            await script.prepare()
        except RedisError as exc:
            log.warning("de-dup start-up check deferred to the first ingest: %s", exc)
        ring = Ring.from_settings(settings)
        event_bus = EventBus(redis, ring)

        async def publish_fast_path(ticks: Sequence[Tick], outcomes: list[Outcome]) -> None:
            await event_bus.publish_many(events.ticks_received(ticks, outcomes))

        async def flush_and_count(ticks: Sequence[Tick], spans: TraceSpans) -> list[Outcome]:
            outcomes = await script(ticks, spans)
            # Before any waiter resumes: a 200 is never sent ahead of its count.
            metrics_.count_group_commit(outcome.status.value for outcome in outcomes)
            return outcomes

        committer = GroupCommitter(
            flush=flush_and_count,
            linger_s=settings.ingest_linger_ms / 1000,
            max_batch=settings.ingest_max_batch,
            after_flush=publish_fast_path,
        )
        ledger = LedgerReader(redis, keys, heartbeat_timeout_ms=settings.heartbeat_timeout_ms)
        samples = SamplesStore(redis, keys)
        sampler = StatsSampler(ledger, samples, settings)
        alert_rules = AsyncAlertRuleMirror(redis, keys)
        # The mirror is rebuilt from PostgreSQL in the background: start-up never waits for it.
        alert_sync = RuleMirrorSync(pool, alert_rules)
        await committer.start()
        await sampler.start()
        await alert_sync.start()
        freeze_startup_heap()
        app.state.resources = AppState(
            settings=settings,
            keys=keys,
            pg_pool=pool,
            committer=committer,
            metrics=metrics_,
            stats=sampler,
            events=event_bus,
            views=ViewStore(redis, keys, ring),
            feeders=FeederRegistry(redis, keys, event_bus),
            dead_letters=DeadLetters(redis, keys, (settings.queue_name, CALC_B_QUEUE)),
            samples=samples,
            probes=Probes(redis, keys),
            ledger=ledger,
            outbox=OutboxReader(redis, keys),
            alert_rules=alert_rules,
            alert_firings=AlertFirings(redis, keys, ring),
            alert_sync=alert_sync,
            restarts=ProcessRestartsReader(redis, keys),
            rebuilds=RebuildRequests(redis, keys),
            replays=Replays(redis, keys, ring, settings.replay_ttl),
        )
        try:
            yield
        finally:
            await alert_sync.stop()
            await committer.stop()
            await sampler.stop()  # after the committer: its last 503s are counted, then flushed
            await pool.close()
            await redis.aclose()

    configure_logging(settings, service="api")
    app = FastAPI(
        title="Tickstream API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # We configure no OpenTelemetry providers; left on, FastAPI asks the OTel globals on every
        # request whether someone did (three os.environ reads per request on the ingest path).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    add_failure_handlers(app)  # a lost Redis / PostgreSQL: 503 + Retry-After; else JSON 500
    app.add_middleware(TraceMiddleware)  # trace id per request: logs, ingest, response headers
    routers = (
        ingest, symbols, candles, feeder, internal, stream, health, metrics, stats, admin, alerts,
        replays,
    )  # fmt: skip
    for module in routers:
        app.include_router(module.router)
    app.router.routes.insert(0, ingest.direct_route)  # serves POST /ingest/tick (see there)
    return app
