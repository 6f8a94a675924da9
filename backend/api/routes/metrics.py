"""GET /metrics: this process's counters plus pipeline-wide figures read from Redis now.

Readable from METRICS_ALLOW_CIDRS or with the API key (backend.core.metrics_access), the rule
every process's /metrics applies.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from backend.api.deps import Resources
from backend.api.errors import ApiError
from backend.ops.access import MetricsAccess


async def require_metrics_access(request: Request, res: Resources) -> None:
    decision = MetricsAccess.from_settings(res.settings).decide(request)
    if not decision.allowed:
        error = "unauthorized" if decision.status == 401 else "forbidden"
        raise ApiError(
            decision.status,
            error,
            decision.reason,
            [{"field": "x-api-key", "reason": decision.reason}],
        )


router = APIRouter(tags=["ops"], dependencies=[Depends(require_metrics_access)])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(res: Resources) -> Response:
    try:
        gauges = await res.ledger.gauges(now_ms=time.time() * 1000)
        res.metrics.set_pipeline(
            gauges.queue_depth,
            gauges.dead_letters,  # both calc queues, as /stats counts them
            gauges.outbox_entries,
            gauges.outbox_pending,
            gauges.counters,
        )
        res.metrics.set_alert_backlog(
            gauges.alert_evaluations_waiting,
            gauges.alert_deliveries_waiting,
            gauges.alert_deliveries_parked,
            gauges.alert_history_entries,
        )
        restarts = await res.restarts.all()
        res.metrics.process_restarts.set({name: r.count for name, r in restarts.items()})
    except RedisError:
        pass  # serve this process's own metrics even when Redis is down
    return Response(generate_latest(res.metrics.registry), media_type=CONTENT_TYPE_LATEST)
