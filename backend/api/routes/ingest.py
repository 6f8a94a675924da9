"""POST /ingest/tick and /ingest/ticks: validate, de-duplicate, hand off to Redis, acknowledge.

Postgres is never touched here. The 200 is sent only after the group commit put the tick in Redis
(queued for calc and staged in the outbox, atomically).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.exceptions import RedisError
from starlette.routing import Route

from backend.api.deps import AppState, IngestAuth, Resources, authenticate_ingest
from backend.api.errors import ApiError, read_json_body
from backend.api.failures import redis_unavailable
from backend.api.tracing import trace_of
from backend.bus.ingest import BacklogFull, Outcome, Status
from backend.core.ticks import Tick, TickIn, TimeBounds
from backend.core.validation import FieldError, validate_tick

router = APIRouter(tags=["ingest"], dependencies=[IngestAuth])

_TICK_BODY = {
    "content": {"application/json": {"schema": TickIn.model_json_schema()}},
    "required": True,
}
_TICKS_BODY = {
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": TickIn.model_json_schema(), "maxItems": 5000}
        }
    },
    "required": True,
}


# What both ingest routes may answer besides their own outcomes.
_SHARED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong Basic credentials"},
    429: {"description": "backlog at MAX_BACKLOG; retry after `Retry-After`"},
    503: {"description": "Redis unavailable; retry with the same event_id"},
}


def _responses(own: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI `responses`: its own plus the shared ones, in status order."""
    return dict(sorted({**_SHARED_RESPONSES, **own}.items(), key=lambda item: str(item[0])))


_TICK_RESPONSES = _responses(
    {
        200: {
            "description": "accepted or duplicate",
            "content": {"application/json": {"example": {"status": "accepted", "event_id": "e-1"}}},
        },
        409: {"description": "same event_id, different content"},
        413: {"description": "body over MAX_BODY_BYTES"},
        422: {"description": "invalid tick; `detail` names each field and reason"},
    }
)

_TICKS_RESPONSES = _responses(
    {
        200: {
            "description": "per-item outcome; one bad item never rejects the others",
            "content": {
                "application/json": {
                    "example": {
                        "accepted": 2,
                        "duplicates": 0,
                        "rejected": [
                            {
                                "index": 2,
                                "errors": [
                                    {
                                        "field": "price",
                                        "reason": "must be > 0, between 1e-12 and 1e+12",
                                    }
                                ],
                            }
                        ],
                    }
                }
            },
        },
        413: {"description": "body over MAX_BATCH_BODY_BYTES"},
        422: {"description": "body is not a JSON array of 1..MAX_BATCH_ITEMS items"},
    }
)


def _bounds(res: Resources) -> TimeBounds:
    return TimeBounds(
        time.time_ns() // 1_000, res.settings.max_tick_age, res.settings.max_future_skew
    )


def _conflict_errors(outcome: Outcome, tick: Tick) -> list[FieldError]:
    fields = outcome.differing
    return [
        {
            "field": "event_id",
            "reason": "already accepted with different content; the first write wins",
        },
        *(
            {"field": name, "reason": "differs from the accepted tick with this event_id"}
            for name in fields
        ),
    ]


async def _hand_off(res: Resources, ticks: list[Tick], request: Request) -> list[Outcome]:
    """Group-commit one request's ticks, with the request's trace id (see api.tracing)."""
    try:
        outcomes = await res.committer.submit(ticks, trace_of(request.scope).trace_id)
    except BacklogFull as exc:
        # Counted pipeline-wide by the script itself (`ingest_shed`); nothing was written.
        res.metrics.ticks.labels(outcome="shed", reason="backlog").inc(len(ticks))
        raise ApiError(
            429,
            "backpressure",
            f"the pipeline is behind ({exc.backlog} ticks waiting, MAX_BACKLOG "
            f"{res.settings.max_backlog}); retry after Retry-After with the same event_id",
            [{"field": "body", "reason": "not accepted: backlog at the high-water mark"}],
            headers={"Retry-After": "1"},
        ) from None
    except RedisError as exc:
        res.metrics.ticks.labels(outcome="rejected", reason="unavailable").inc(len(ticks))
        res.stats.reject("unavailable", len(ticks))
        raise redis_unavailable(
            exc, f"the queue is unavailable ({type(exc).__name__}); retry with the same event_id"
        ) from None
    return outcomes  # counted per group commit (app.flush_and_count), not per request


def _count_rejections(res: Resources, errors: list[FieldError]) -> None:
    for err in errors:
        res.metrics.ticks.labels(outcome="rejected", reason=err["field"]).inc()
        res.stats.reject(err["field"])  # in memory; the stats sampler flushes it pipeline-wide


async def _accept_tick(request: Request, res: AppState) -> Response:
    started = time.perf_counter()
    raw = await read_json_body(request, res.settings.max_body_bytes)
    result = validate_tick(raw, _bounds(res))
    if isinstance(result, list):
        _count_rejections(res, result)
        raise ApiError(422, "validation_failed", "tick rejected", result)
    [outcome] = await _hand_off(res, [result], request)
    res.metrics.tick_latency.observe(time.perf_counter() - started)
    if outcome.status is Status.CONFLICT:
        raise ApiError(
            409,
            "conflict",
            f"event_id {result.event_id!r} conflicts",
            _conflict_errors(outcome, result),
        )
    # orjson writes these bytes exactly as JSONResponse's json.dumps would (compact, UTF-8
    # unescaped; event_id is printable by validation), at a fraction of the cost.
    return Response(
        orjson.dumps({"status": outcome.status.value, "event_id": result.event_id}),
        media_type="application/json",
    )


@router.post(
    "/ingest/tick",
    openapi_extra={"requestBody": _TICK_BODY},
    responses=_TICK_RESPONSES,
)
async def ingest_tick(request: Request, res: Resources) -> Response:
    # The documented route (body, responses, Basic auth in the OpenAPI document; a docstring
    # here would become its description). `direct_route`, mounted ahead of it, serves requests.
    return await _accept_tick(request, res)


async def _serve_tick(request: Request) -> Response:
    res: AppState = request.app.state.resources
    await authenticate_ingest(request, res)
    return await _accept_tick(request, res)


# POST /ingest/tick without FastAPI's per-request dependency solving (the route has no
# parameters to solve: the body is read and checked by hand), its largest fixed cost after
# uvicorn's. app.create_app mounts it before the routers; errors go through the same handlers.
direct_route = Route("/ingest/tick", _serve_tick, methods=["POST"], include_in_schema=False)


@router.post(
    "/ingest/ticks",
    openapi_extra={"requestBody": _TICKS_BODY},
    responses=_TICKS_RESPONSES,
)
async def ingest_ticks(request: Request, res: Resources) -> dict[str, Any]:
    started = time.perf_counter()
    raw = await read_json_body(request, res.settings.max_batch_body_bytes)
    if not isinstance(raw, list) or not 1 <= len(raw) <= res.settings.max_batch_items:
        raise ApiError(
            422,
            "validation_failed",
            "body must be a JSON array of ticks",
            [
                {
                    "field": "body",
                    "reason": f"must be an array of 1 to {res.settings.max_batch_items} ticks",
                }
            ],
        )
    bounds = _bounds(res)
    rejected: list[dict[str, Any]] = []
    valid: list[tuple[int, Tick]] = []
    for index, item in enumerate(raw):
        result = validate_tick(item, bounds)
        if isinstance(result, list):
            _count_rejections(res, result)
            rejected.append({"index": index, "errors": result})
        else:
            valid.append((index, result))
    outcomes = await _hand_off(res, [tick for _, tick in valid], request) if valid else []
    accepted = duplicates = 0
    for (index, tick), outcome in zip(valid, outcomes, strict=True):
        if outcome.status is Status.ACCEPTED:
            accepted += 1
        elif outcome.status is Status.DUPLICATE:
            duplicates += 1
        else:
            rejected.append({"index": index, "errors": _conflict_errors(outcome, tick)})
    rejected.sort(key=lambda r: r["index"])
    res.metrics.ticks_latency.observe(time.perf_counter() - started)
    return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
