"""GET /symbols/{symbol}/candles: exact OHLCV from the stored ticks, current bucket live.

Candles come from the rollup tables that the flusher maintains in the same transaction as the
ticks, merged with the ticks still in the outbox (accepted, not yet in Postgres). The outbox is
read first and the rollup plus an existence check then run in ONE repeatable-read snapshot, so a
batch committed meanwhile is counted exactly once.
"""

from __future__ import annotations

import time
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query
from fastapi.responses import Response

from backend.api.deps import ReadAuth, Resources
from backend.api.errors import ApiError
from backend.api.failures import postgres_unavailable
from backend.api.routes.symbols import SymbolPath
from backend.core.candles import (
    INTERVALS_S,
    Candle,
    CandlesResponse,
    Interval,
    bucket_start,
    combine,
)
from backend.core.ticks import parse_ts_us, us_to_iso
from backend.storage.candles_repo import ROLLUP_FOR, read_rollup, rollup_width_us, stored_event_ids

router = APIRouter(tags=["symbols"], dependencies=[ReadAuth])

TimeParam = Annotated[
    str | None,
    Query(
        description="ISO-8601 with offset, or epoch milliseconds", examples=["2026-11-21T14:00:00Z"]
    ),
]


def _parse_time(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return parse_ts_us(int(raw) if raw.lstrip("-").isdigit() else raw)
    except ValueError as exc:
        raise ApiError(
            422, "validation_failed", f"bad {name}", [{"field": name, "reason": str(exc)}]
        ) from None


@router.get(
    "/symbols/{symbol}/candles",
    summary="OHLCV candles on event time (exact)",
    response_model=CandlesResponse,
)
async def get_candles(
    res: Resources,
    symbol: SymbolPath,
    interval: Interval = "1m",
    from_: Annotated[
        str | None,
        Query(alias="from", description="Start (inclusive); default to − limit × interval"),
    ] = None,
    to: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=5_000)] = 500,
) -> Response:
    width_us = INTERVALS_S[interval] * 1_000_000
    to_us = _parse_time("to", to)
    if to_us is None:  # up to and including the current bucket
        to_us = bucket_start(time.time_ns() // 1_000, width_us) + width_us
    from_us = _parse_time("from", from_)
    if from_us is None:
        from_us = to_us - limit * width_us
    if from_us >= to_us:
        raise ApiError(
            422,
            "validation_failed",
            "empty range",
            [{"field": "from", "reason": "must be before `to`"}],
        )
    from_us = bucket_start(from_us, width_us)
    table = ROLLUP_FOR[interval]

    live, complete = await res.outbox.pending_ticks(symbol, from_us, to_us)
    try:
        async with res.pg_pool.connection(timeout=2) as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            stored = await read_rollup(conn, table, symbol, from_us, to_us, width_us)
            already = await stored_event_ids(conn, [t.event_id for t in live])
    except (psycopg.Error, TimeoutError) as exc:
        raise postgres_unavailable(
            exc, f"candles are unavailable while Postgres is down ({type(exc).__name__})"
        ) from None
    fresh = [t for t in live if t.event_id not in already]
    fine = rollup_width_us(table)
    pieces: list[Candle] = [*stored, *(Candle.of_tick(t, fine) for t in fresh)]
    candles = sorted(combine(pieces, width_us).values(), key=lambda c: c.bucket_us)[-limit:]
    body = {
        "symbol": symbol,
        "interval": interval,
        "from": us_to_iso(from_us),
        "to": us_to_iso(to_us),
        "candles": [c.to_json() for c in candles],
        "live": {"pending_ticks_included": len(fresh), "complete": complete},
    }
    # Validated and serialised in pydantic-core: a few thousand candles stay cheap.
    answer = CandlesResponse.model_validate(body)
    return Response(answer.model_dump_json(), media_type="application/json")
