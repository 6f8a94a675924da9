"""POST /ingest/tick and /ingest/ticks, the naive way: each tick is validated, INSERTed and
COMMITted (its own transaction, also inside a batch), then merged into the in-process view,
all before the answer. Same validator, bounds, limits and response bodies as the product."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from backend.api.errors import ApiError, read_json_body
from backend.core.ticks import TimeBounds
from backend.core.validation import validate_tick
from backend.settings import Settings
from tests.bench.baseline.storage import insert_tick
from tests.bench.baseline.views import Views


@asynccontextmanager
async def _connection(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection; Postgres trouble is a 503 (retry with the same event_id)."""
    try:
        async with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise ApiError(
            503,
            "unavailable",
            f"Postgres is unavailable ({type(exc).__name__}); retry with the same event_id",
            headers={"Retry-After": "1"},
        ) from None


def ingest_router(settings: Settings, pool: AsyncConnectionPool, views: Views) -> APIRouter:
    router = APIRouter(tags=["ingest"])

    def bounds() -> TimeBounds:
        now_us = time.time_ns() // 1_000
        return TimeBounds(now_us, settings.max_tick_age, settings.max_future_skew)

    @router.post("/ingest/tick")
    async def ingest_tick(request: Request) -> JSONResponse:
        raw = await read_json_body(request, settings.max_body_bytes)
        tick = validate_tick(raw, bounds())
        if isinstance(tick, list):
            raise ApiError(422, "validation_failed", "tick rejected", tick)
        async with _connection(pool) as conn:
            new = await insert_tick(conn, tick)
        if new:
            views.apply(tick)
        return JSONResponse(
            {"status": "accepted" if new else "duplicate", "event_id": tick.event_id}
        )

    @router.post("/ingest/ticks")
    async def ingest_ticks(request: Request) -> dict[str, Any]:
        raw = await read_json_body(request, settings.max_batch_body_bytes)
        if not isinstance(raw, list) or not 1 <= len(raw) <= settings.max_batch_items:
            reason = f"must be an array of 1 to {settings.max_batch_items} ticks"
            raise ApiError(
                422,
                "validation_failed",
                "body must be a JSON array of ticks",
                [{"field": "body", "reason": reason}],
            )
        now = bounds()
        accepted = duplicates = 0
        rejected: list[dict[str, Any]] = []
        async with _connection(pool) as conn:
            for index, item in enumerate(raw):
                tick = validate_tick(item, now)
                if isinstance(tick, list):
                    rejected.append({"index": index, "errors": tick})
                elif await insert_tick(conn, tick):
                    accepted += 1
                    views.apply(tick)
                else:
                    duplicates += 1
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    return router
