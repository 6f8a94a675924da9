"""GET /stream: the product's SSE format (`event: <type>` / `data: <json>`, `missed` reports,
keep-alives), fed by the in-process views instead of Redis pub/sub."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from backend.api.errors import ApiError
from backend.settings import Settings
from tests.bench.baseline.subscriber import Subscriber
from tests.bench.baseline.views import Views

KEEPALIVE_S = 15.0


async def _events(request: Request, sub: Subscriber, views: Views) -> AsyncIterator[bytes]:
    reported = 0
    try:
        yield b": connected\n\n"
        while not await request.is_disconnected():
            item = await sub.next(KEEPALIVE_S)
            if item is None:
                yield b": keepalive\n\n"
                continue
            dropped, raw = item
            if dropped > reported:
                missed = orjson.dumps({"dropped": dropped - reported})
                yield b"event: missed\ndata: " + missed + b"\n\n"
                reported = dropped
            event_type = orjson.loads(raw).get("type", "message")
            yield b"event: " + event_type.encode() + b"\ndata: " + raw + b"\n\n"
    finally:
        views.subscribers.discard(sub)


def stream_router(settings: Settings, views: Views) -> APIRouter:
    router = APIRouter(tags=["stream"])

    @router.get("/stream")
    async def stream(
        request: Request,
        symbols: Annotated[str | None, Query()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        expected = settings.api_key.get_secret_value().encode() if settings.api_key else None
        given = (x_api_key or "").encode()
        if expected is not None and not secrets.compare_digest(given, expected):
            raise ApiError(
                401,
                "unauthorized",
                "x-api-key header required",
                [{"field": "x-api-key", "reason": "missing or wrong API key"}],
            )
        wanted = frozenset(s.strip() for s in symbols.split(",") if s.strip()) if symbols else None
        return StreamingResponse(
            _events(request, views.subscribe(wanted), views),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
