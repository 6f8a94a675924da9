"""GET /stream: Server-Sent Events of every `realtime:updates` event, optionally by symbol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from backend.api.broadcaster import Subscriber
from backend.api.deps import ReadAuth, Resources

router = APIRouter(tags=["stream"], dependencies=[ReadAuth])

KEEPALIVE_S = 15.0


async def _events(request: Request, sub: Subscriber, release: object) -> AsyncIterator[bytes]:
    reported = 0
    try:
        yield b": connected\n\n"
        while True:
            if await request.is_disconnected():
                return
            item = await sub.next(KEEPALIVE_S)
            if item is None:
                yield b": keepalive\n\n"
                continue
            dropped, raw = item
            if dropped > reported:
                yield (
                    b"event: missed\ndata: "
                    + orjson.dumps({"dropped": dropped - reported})
                    + b"\n\n"
                )
                reported = dropped
            event_type = orjson.loads(raw).get("type", "message")
            yield b"event: " + event_type.encode() + b"\ndata: " + raw + b"\n\n"
    finally:
        release()  # type: ignore[operator]


@router.get("/stream", summary="Server-Sent Events: tick.received and symbol.updated")
async def stream(
    request: Request,
    res: Resources,
    symbols: Annotated[
        str | None, Query(description="Comma-separated filter, e.g. BTCUSDT,ETHUSDT")
    ] = None,
) -> StreamingResponse:
    wanted = frozenset(s.strip() for s in symbols.split(",") if s.strip()) if symbols else None
    sub = res.broadcaster.subscribe(wanted)
    return StreamingResponse(
        _events(request, sub, lambda: res.broadcaster.unsubscribe(sub)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
