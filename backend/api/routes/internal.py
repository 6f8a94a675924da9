"""POST /internal/agg-update: an external calc worker stores and republishes a view."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import InternalAuth, Resources
from backend.api.errors import ApiError
from backend.bus import events
from backend.core.ticks import SYMBOL_RE, parse_ts_us, us_to_iso

router = APIRouter(tags=["internal"], dependencies=[InternalAuth])


class AggUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(pattern=SYMBOL_RE.pattern)
    view: dict[str, Any]
    ts: str | int = Field(description="ISO-8601 with offset, or epoch milliseconds")


@router.post("/internal/agg-update", summary="Store and republish a view computed elsewhere")
async def agg_update(body: AggUpdate, res: Resources) -> dict[str, str]:
    try:
        ts_iso = us_to_iso(parse_ts_us(body.ts))
    except ValueError as exc:
        raise ApiError(
            422, "validation_failed", "bad ts", [{"field": "ts", "reason": str(exc)}]
        ) from None
    view = {**body.view, "symbol": body.symbol, "last_ts": body.view.get("last_ts", ts_iso)}
    now_us = time.time_ns() // 1_000
    async with res.redis.pipeline(transaction=True) as pipe:
        pipe.set(res.keys.view(body.symbol), orjson.dumps(view))
        pipe.hset(res.keys.symbols, body.symbol, now_us)
        pipe.publish(res.settings.pubsub_channel, events.symbol_updated(body.symbol, view))
        await pipe.execute()
    return {"status": "stored", "symbol": body.symbol}
