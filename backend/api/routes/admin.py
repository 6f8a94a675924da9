"""Admin routes (x-api-key): dead letters and state rebuilds.

Dead letters: `GET /admin/dead-letters` and `POST /admin/dead-letters/requeue`. A message lands
there after CALC_MAX_RETRIES failed attempts, with the reason the worker saw. Requeueing is safe
to repeat: a calc message is applied at most once (its done-marker).

Rebuilds: `POST /admin/rebuild` queues one `rebuild_symbols` message per symbol (the worker
service runs them: tasks/rebuild.py), `GET /admin/rebuild` shows each symbol's last rebuild. A
rebuild is exact while ingest runs (docs/services/rebuild.md), so it is safe to ask any time.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import AdminAuth, Resources
from backend.core.rebuild import RebuildQueued, RebuildRequest, RebuildStatus, RebuildStatuses
from backend.core.ticks import us_to_iso
from backend.storage.ticks_repo import distinct_symbols_async

PG_CONNECT_TIMEOUT_S = 5.0  # then 503 (PoolTimeout is an OperationalError)

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


@router.post(
    "/admin/rebuild",
    status_code=202,
    response_model=RebuildQueued,
    summary="Rebuild symbols' calc state and views from PostgreSQL + the outbox",
)
async def request_rebuild(
    res: Resources,
    request: Annotated[
        RebuildRequest | None,
        Body(openapi_examples={"all": {"value": {}}, "some": {"value": {"symbols": ["BTCUSDT"]}}}),
    ] = None,
) -> RebuildQueued:
    """Without `symbols`: every symbol Redis (symbols and view-order hashes) or PostgreSQL
    (md_ticks) knows, so a Redis that lost its views still gets every symbol back."""
    symbols = request.symbols if request is not None else None
    if symbols is None:
        known = await res.rebuilds.known_symbols()
        async with res.pg_pool.connection(timeout=PG_CONNECT_TIMEOUT_S) as conn:
            stored = await distinct_symbols_async(conn)
        symbols = sorted(known | set(stored))
    queued_at = us_to_iso(time.time_ns() // 1_000)
    messages = await res.rebuilds.enqueue(
        symbols, lambda symbol: RebuildStatus(symbol=symbol, phase="queued", queued_at=queued_at)
    )
    return RebuildQueued(symbols=symbols, messages=messages)


@router.get(
    "/admin/rebuild",
    response_model=RebuildStatuses,
    summary="Each symbol's last rebuild: queued, fenced, rebuilding, done or failed",
)
async def rebuild_status(res: Resources) -> RebuildStatuses:
    return RebuildStatuses(rebuilds=await res.rebuilds.statuses())
