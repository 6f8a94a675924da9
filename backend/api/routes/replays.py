"""Replays and backtests: `POST /replays`, their status and controls, and what they produced.

Thin: the request is validated by the shared `ReplayRequest`, stored rules are resolved from
PostgreSQL (the truth) into the record, and the `history` service does the rest. Results are read
from the replay's own namespace, never from the live one.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import orjson
import psycopg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from backend.api.deps import ReadAuth, Resources
from backend.api.errors import ApiError, read_json_body
from backend.api.failures import postgres_unavailable
from backend.bus.replays import ReplayNotFound
from backend.core.alerts.firing import Firing
from backend.core.alerts.rules import AlertRule, rule_errors
from backend.core.candles import INTERVALS_S, Interval, combine
from backend.core.gaps import GapRecord
from backend.core.replay import (
    Control,
    ControlError,
    Replay,
    ReplayCandles,
    ReplayCreated,
    ReplayFirings,
    ReplayGaps,
    ReplayRecord,
    ReplayRequest,
    ReplaysResponse,
)
from backend.core.ticks import datetime_to_us, us_to_datetime
from backend.core.view import View
from backend.core.window import WindowState
from backend.storage import alerts_repo

router = APIRouter(prefix="/replays", tags=["replays"], dependencies=[ReadAuth])

ReplayId = Annotated[str, Path(pattern=r"^[0-9a-f-]{8,64}$")]
SymbolPath = Annotated[str, Path(pattern=r"^[A-Z0-9][A-Z0-9._:/-]{0,31}$", examples=["BTCUSDT"])]
PG_TIMEOUT_S = 2


def _now_us() -> int:
    return time.time_ns() // 1_000


def _invalid(detail: list[dict[str, str]]) -> ApiError:
    return ApiError(422, "validation_failed", "replay request is invalid", detail)


def _not_found(replay_id: str) -> ApiError:
    return ApiError(
        404, "not_found", f"no replay {replay_id}", [{"field": "id", "reason": "unknown replay"}]
    )


async def _record(res: Resources, replay_id: str) -> ReplayRecord:
    record = await res.replays.get(replay_id)
    if record is None:
        raise _not_found(replay_id)
    return record


async def _resolve_rules(
    res: Resources, request: ReplayRequest, now_us: int
) -> list[dict[str, object]]:
    """The rules to backtest, as stored in the record: stored ones read from PostgreSQL, inline
    ones given an id of their own. Channels are dropped: a sandbox never delivers."""
    rules: list[AlertRule] = []
    if request.rule_ids:
        try:
            async with res.pg_pool.connection(timeout=PG_TIMEOUT_S) as conn:
                for i, rule_id in enumerate(request.rule_ids):
                    rule = await alerts_repo.get_rule(conn, rule_id)
                    if rule is None:
                        raise _invalid([{"field": f"rule_ids.{i}", "reason": "no such rule"}])
                    if rule.symbol not in request.symbols:
                        reason = f"rule is for {rule.symbol}, which is not replayed"
                        raise _invalid([{"field": f"rule_ids.{i}", "reason": reason}])
                    rules.append(rule)
        except (psycopg.Error, TimeoutError) as exc:
            raise postgres_unavailable(
                exc, f"stored rules cannot be read while Postgres is down ({type(exc).__name__})"
            ) from None
    now = us_to_datetime(now_us)
    for i, spec in enumerate(request.rules):
        data = spec.model_dump(mode="json", exclude={"channels"})
        rules.append(
            AlertRule.model_validate(
                data | {"id": f"inline-{i + 1}", "version": 1, "created_at": now, "updated_at": now}
            )
        )
    sandboxed = {"channels": [{"type": "ui"}]}
    return [r.model_dump(mode="json", exclude={"channels"}) | sandboxed for r in rules]


@router.post(
    "",
    status_code=202,
    response_model=ReplayCreated,
    summary="Replay stored ticks through calc (and sandboxed alert rules)",
)
async def create_replay(request: Request, res: Resources) -> ReplayCreated:
    raw = await read_json_body(request, res.settings.max_body_bytes)
    try:
        body = ReplayRequest.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(rule_errors(exc)) from None
    now_us = _now_us()
    rules = await _resolve_rules(res, body, now_us)
    record = ReplayRecord(
        id=str(uuid.uuid4()),
        symbols=body.symbols,
        from_us=datetime_to_us(body.from_),
        to_us=datetime_to_us(body.to),
        speed=body.speed,
        alerts=body.alerts,
        rules=rules,
        created_us=now_us,
        expires_us=now_us + res.settings.replay_ttl * 1_000_000,
    )
    await res.replays.create(record)
    return ReplayCreated(id=record.id)


@router.get("", response_model=ReplaysResponse, summary="Replays, newest first")
async def list_replays(
    res: Resources, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> ReplaysResponse:
    now = _now_us()
    return ReplaysResponse(replays=[r.status(now) for r in await res.replays.list(limit)])


@router.get("/{replay_id}", response_model=Replay, summary="A replay's state and progress")
async def get_replay(res: Resources, replay_id: ReplayId) -> Replay:
    return (await _record(res, replay_id)).status(_now_us())


async def _control(res: Resources, replay_id: str, control: Control) -> Replay:
    now = _now_us()
    try:
        record = await res.replays.control(replay_id, control, now)
    except ReplayNotFound:
        raise _not_found(replay_id) from None
    except ControlError as exc:
        detail = [{"field": "state", "reason": str(exc)}]
        raise ApiError(409, "conflict", f"cannot {control}: {exc}", detail) from None
    return record.status(now)


@router.post("/{replay_id}/pause", response_model=Replay, summary="Pause between two groups")
async def pause_replay(res: Resources, replay_id: ReplayId) -> Replay:
    return await _control(res, replay_id, "pause")


@router.post("/{replay_id}/resume", response_model=Replay, summary="Resume a paused replay")
async def resume_replay(res: Resources, replay_id: ReplayId) -> Replay:
    return await _control(res, replay_id, "resume")


@router.post("/{replay_id}/cancel", response_model=Replay, summary="Stop for good")
async def cancel_replay(res: Resources, replay_id: ReplayId) -> Replay:
    return await _control(res, replay_id, "cancel")


def _no_view(replay_id: str, symbol: str) -> ApiError:
    return ApiError(
        404,
        "not_found",
        f"replay {replay_id} has no view of {symbol} yet",
        [{"field": "symbol", "reason": "not replayed (yet)"}],
    )


@router.get(
    "/{replay_id}/symbols/{symbol}", response_model=View, summary="The replay's view W of a symbol"
)
async def get_replay_view(res: Resources, replay_id: ReplayId, symbol: SymbolPath) -> Response:
    await _record(res, replay_id)
    raw = await res.replays.view(replay_id, symbol)
    if raw is None:
        raise _no_view(replay_id, symbol)
    return Response(content=raw, media_type="application/json")


@router.get(
    "/{replay_id}/symbols/{symbol}/candles",
    response_model=ReplayCandles,
    summary="The replay's candles of a symbol, over everything it replayed so far",
)
async def get_replay_candles(
    res: Resources, replay_id: ReplayId, symbol: SymbolPath, interval: Interval = "1m"
) -> Response:
    await _record(res, replay_id)
    width = INTERVALS_S[interval] * 1_000_000
    merged = combine(await res.replays.candles(replay_id, symbol), width)
    body = {
        "replay_id": replay_id,
        "symbol": symbol,
        "interval": interval,
        "candles": [merged[b].to_json() for b in sorted(merged)],
    }
    return Response(content=orjson.dumps(body), media_type="application/json")


@router.get(
    "/{replay_id}/symbols/{symbol}/gaps",
    response_model=ReplayGaps,
    summary="Sequence gaps open at the replay's cursor",
)
async def get_replay_gaps(res: Resources, replay_id: ReplayId, symbol: SymbolPath) -> ReplayGaps:
    await _record(res, replay_id)
    raw = await res.replays.state(replay_id, symbol)
    if raw is None:
        raise _no_view(replay_id, symbol)
    tracks = WindowState.from_json(raw, symbol).seqs.values()
    open_ = sorted((g for t in tracks for g in t.open), key=lambda g: (g.source, g.from_seq))
    records = [GapRecord.model_validate(g.to_json()) for g in open_]
    return ReplayGaps(replay_id=replay_id, symbol=symbol, open=records)


@router.get(
    "/{replay_id}/alerts",
    response_model=ReplayFirings,
    summary="What the sandboxed rules would have fired (never delivered)",
)
async def get_replay_firings(res: Resources, replay_id: ReplayId) -> ReplayFirings:
    await _record(res, replay_id)
    raws = await res.replays.firings(replay_id)
    return ReplayFirings(replay_id=replay_id, firings=[Firing.model_validate_json(r) for r in raws])
