"""GET /metrics: this process's counters plus pipeline-wide figures read from Redis now."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from backend.api.deps import ReadAuth, Resources
from backend.bus import stats
from backend.bus.keys import OUTBOX_GROUP

router = APIRouter(tags=["ops"], dependencies=[ReadAuth])


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(res: Resources) -> Response:
    keys = res.keys
    try:
        async with res.redis.pipeline(transaction=False) as pipe:
            pipe.llen(keys.queue_list())
            pipe.zcard(keys.dead_letters())
            pipe.xlen(keys.outbox)
            pipe.hgetall(keys.stats)
            depth, dead, outbox, counters = await pipe.execute()
        pending = 0
        if outbox:
            try:
                pending = (await res.redis.xpending(keys.outbox, OUTBOX_GROUP))["pending"]
            except RedisError:
                pending = 0
        res.metrics.set_pipeline(depth, dead, outbox, pending, stats.parse(counters))
    except RedisError:
        pass  # serve this process's own metrics even when Redis is down
    return Response(generate_latest(res.metrics.registry), media_type=CONTENT_TYPE_LATEST)
