"""Dead letters: `GET /admin/dead-letters` and `POST /admin/dead-letters/requeue` (x-api-key).

A message lands there after CALC_MAX_RETRIES failed attempts, with the reason the worker saw.
Requeueing is safe to repeat: a calc message is applied at most once (its done-marker).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import AdminAuth, Resources

router = APIRouter(tags=["admin"], dependencies=[AdminAuth])


class RequeueRequest(BaseModel):
    """Which dead letters to retry: the given ids, or all of them when `message_ids` is null."""

    model_config = ConfigDict(extra="forbid")

    message_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=10_000
    )


@router.get("/admin/dead-letters", summary="Messages that failed after their retries")
async def list_dead_letters(
    res: Resources, limit: Annotated[int, Query(ge=1, le=1_000)] = 100
) -> dict[str, Any]:
    # Counted first: a letter that arrives in between is then listed but not counted, never
    # counted but missing from the list (letters only leave by a requeue).
    total = await res.dead_letters.count()
    items = await res.dead_letters.list(limit)
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
    result = await res.dead_letters.requeue(request.message_ids)
    return {"count": len(result["requeued"]), **result}
