"""Dead letters: `GET /admin/dead-letters` and `POST /admin/dead-letters/requeue` (x-api-key).

A message lands there after CALC_MAX_RETRIES failed attempts, with the reason the worker saw.
Requeueing is safe to repeat: a calc message is applied at most once (its done-marker).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from backend.api.deps import AdminAuth, Resources
from backend.api.routes.feeder import unavailable
from backend.bus import dead_letters
from backend.bus.keys import CALC_B_QUEUE

router = APIRouter(tags=["admin"], dependencies=[AdminAuth])


class RequeueRequest(BaseModel):
    """Which dead letters to retry: the given ids, or all of them when `message_ids` is null."""

    model_config = ConfigDict(extra="forbid")

    message_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=10_000
    )


def _queues(res: Resources) -> tuple[str, str]:
    return (res.settings.queue_name, CALC_B_QUEUE)


@router.get("/admin/dead-letters", summary="Messages that failed after their retries")
async def list_dead_letters(
    res: Resources, limit: Annotated[int, Query(ge=1, le=1_000)] = 100
) -> dict[str, Any]:
    try:
        items = await dead_letters.list_dead(res.redis, res.keys, _queues(res), limit)
        total = 0
        for queue in _queues(res):
            total += await res.redis.zcard(res.keys.dead_letters(queue))
    except RedisError as exc:
        raise unavailable(exc) from None
    return {"total": total, "dead_letters": items}


@router.post(
    "/admin/dead-letters/requeue",
    summary="Put dead letters back on their queues (retry count reset)",
)
async def requeue_dead_letters(
    res: Resources,
    request: Annotated[
        RequeueRequest,
        Body(openapi_examples={"all": {"value": {}}, "some": {"value": {"message_ids": ["…"]}}}),
    ],
) -> dict[str, Any]:
    try:
        result = await dead_letters.requeue(res.redis, res.keys, _queues(res), request.message_ids)
        count = len(result["requeued"])
        if count:
            await res.redis.hincrby(res.keys.stats, "dead_letters_requeued", count)
    except RedisError as exc:
        raise unavailable(exc) from None
    return {"count": count, **result}
