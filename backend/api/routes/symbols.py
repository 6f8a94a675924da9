"""Read API for dashboards and API consumers: symbols, the latest view W, stored history."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
import psycopg
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from backend.api.deps import ReadAuth, Resources
from backend.api.errors import ApiError
from backend.api.failures import postgres_unavailable
from backend.core.gaps import GapsResponse
from backend.core.view import SymbolsResponse, View, refresh_stale_json
from backend.core.window import WindowState
from backend.storage.models import MdTick
from backend.storage.ticks_repo import read_history

router = APIRouter(tags=["symbols"], dependencies=[ReadAuth])

SymbolPath = Annotated[str, Path(pattern=r"^[A-Z0-9][A-Z0-9._:/-]{0,31}$", examples=["BTCUSDT"])]
Limit = Annotated[int, Query(ge=1, le=10_000, description="1 to 10,000 rows")]


def _json(raw: bytes) -> Response:
    return Response(content=raw, media_type="application/json")


def _fresh(res: Resources, raw: bytes) -> dict[str, Any]:
    """A stored view with `stale` re-evaluated now (it depends on wall-clock time).

    Parsed as plain JSON, not validated as a `View`: calc wrote it from a validated `View`, and
    this is the hot read path (the models are the routes' documented `response_model`).
    """
    return refresh_stale_json(orjson.loads(raw), time.time_ns() // 1_000, res.settings.stale_after)


@router.get(
    "/symbols", summary="Active symbols with their latest view", response_model=SymbolsResponse
)
async def list_symbols(res: Resources) -> Response:
    stored = await res.views.symbols_with_views()
    body = {"symbols": [{"symbol": s, "view": _fresh(res, v) if v else None} for s, v in stored]}
    return _json(orjson.dumps(body))


def _unknown_symbol(symbol: str) -> ApiError:
    return ApiError(
        404,
        "not_found",
        f"no ticks seen for {symbol}",
        [{"field": "symbol", "reason": "unknown symbol"}],
    )


@router.get(
    "/symbols/{symbol}/gaps",
    summary="Open and recently closed sequence gaps",
    response_model=GapsResponse,
)
async def get_gaps(res: Resources, symbol: SymbolPath) -> GapsResponse:
    raw = await res.views.state(symbol)
    if raw is None:
        raise _unknown_symbol(symbol)
    tracks = WindowState.from_json(raw, symbol).seqs.values()
    open_ = sorted((g for t in tracks for g in t.open), key=lambda g: (g.source, g.from_seq))
    closed = sorted((g for t in tracks for g in t.closed), key=lambda g: -(g.closed_at_us or 0))
    return GapsResponse(
        symbol=symbol,
        open=[g.to_record() for g in open_],
        closed=[g.to_record() for g in closed],
    )


async def _view(res: Resources, symbol: str) -> Response:
    raw = await res.views.view(symbol)
    if raw is None:
        raise _unknown_symbol(symbol)
    return _json(orjson.dumps(_fresh(res, raw)))


async def _history(res: Resources, symbol: str, limit: int) -> list[MdTick]:
    try:
        async with res.pg_pool.connection(timeout=2) as conn:
            rows = await read_history(conn, symbol, limit)
    except (psycopg.Error, TimeoutError) as exc:
        raise postgres_unavailable(
            exc, f"history is unavailable while Postgres is down ({type(exc).__name__})"
        ) from None
    return [MdTick.model_validate(row) for row in rows]


@router.get("/symbols/{symbol}", summary="Latest view W of a symbol", response_model=View)
async def get_symbol(res: Resources, symbol: SymbolPath) -> Response:
    return await _view(res, symbol)


@router.get(
    "/symbols/{symbol}/history", summary="Stored ticks, newest first", response_model=list[MdTick]
)
async def get_history(res: Resources, symbol: SymbolPath, limit: Limit = 1000) -> list[MdTick]:
    return await _history(res, symbol, limit)


@router.get(
    "/tickets/{symbol}",
    summary="Alias of /symbols/{symbol} (the seed design's name)",
    response_model=View,
)
async def get_ticket(res: Resources, symbol: SymbolPath) -> Response:
    return await _view(res, symbol)


@router.get(
    "/tickets/{symbol}/history",
    summary="Alias of /symbols/{symbol}/history",
    response_model=list[MdTick],
)
async def get_ticket_history(
    res: Resources, symbol: SymbolPath, limit: Limit = 1000
) -> list[MdTick]:
    return await _history(res, symbol, limit)
