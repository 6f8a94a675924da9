"""POST /internal/agg-update: an external calc worker stores and republishes a view.

It goes through the same guarded view write as calc (`backend.bus.views`): a view older than the
one stored (by `last_ts`, then `last_event_id`) is refused, so W never goes backwards.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import InternalAuth, Resources
from backend.api.errors import ApiError
from backend.core.ticks import SYMBOL_RE, parse_ts_us, us_to_iso

router = APIRouter(tags=["internal"], dependencies=[InternalAuth])


class AggUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(pattern=SYMBOL_RE.pattern)
    view: dict[str, Any]
    ts: str | int = Field(description="ISO-8601 with offset, or epoch milliseconds")


def _ts_us(field: str, raw: Any) -> int:
    try:
        return parse_ts_us(raw)
    except (ValueError, TypeError) as exc:
        raise ApiError(
            422, "validation_failed", f"bad {field}", [{"field": field, "reason": str(exc)}]
        ) from None


@router.post("/internal/agg-update", summary="Store and republish a view computed elsewhere")
async def agg_update(body: AggUpdate, res: Resources) -> dict[str, str]:
    ts_iso = us_to_iso(_ts_us("ts", body.ts))
    view = {**body.view, "symbol": body.symbol, "last_ts": body.view.get("last_ts", ts_iso)}
    written = await res.views.write(
        symbol=body.symbol,
        view=view,
        last_ts_us=_ts_us("view.last_ts", view["last_ts"]),
        last_event_id=str(view.get("last_event_id") or ""),
        now_us=time.time_ns() // 1_000,
    )
    # An older view than the stored one changes nothing: the caller learns it was superseded.
    return {"status": "stored" if written else "superseded", "symbol": body.symbol}
