"""The ops app: liveness, readiness and /metrics of a process that is not the API.

Each process passes what only it knows: its readiness checks (async callables that raise when the
process cannot do its work now) and how to render its metrics. Liveness answers whenever the
event loop does; readiness runs every check under a deadline, concurrently.

A dependency the process can work without for a while (the worker's PostgreSQL: calc and views
go on, the outbox holds the rows) is an *informational* check: reported, and named in
`degraded` when it fails, but it never makes the process "not ready". Taking a worker out of
rotation because Postgres is down would stop the half of the pipeline that still works.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend.ops.access import MetricsAccess

# A check returns extra detail for the JSON (or None) and raises when the process is not ready.
ReadinessCheck = Callable[[], Awaitable[Mapping[str, Any] | None]]
CHECK_DEADLINE_S = 2.0


async def run_check(check: ReadinessCheck, deadline_s: float = CHECK_DEADLINE_S) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), deadline_s)
    except Exception as exc:  # the reason is the answer: any failure means "not ready"
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return {"ok": False, "error": reason.strip()[:200]}
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return {"ok": True, "latency_ms": latency_ms, **(detail or {})}


def build_ops_app(
    *,
    service: str,
    checks: Mapping[str, ReadinessCheck],
    render_metrics: Callable[[], bytes],
    access: MetricsAccess,
    info_checks: Mapping[str, ReadinessCheck] | None = None,
) -> Starlette:
    informational = dict(info_checks or {})
    overlap = set(informational) & set(checks)
    if overlap:
        raise ValueError(f"checks named twice (gating and informational): {sorted(overlap)}")

    async def liveness(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service})

    async def readiness(_: Request) -> JSONResponse:
        every = {**checks, **informational}
        names = list(every)
        results = await asyncio.gather(*(run_check(every[name]) for name in names))
        report = dict(zip(names, results, strict=True))
        ready = all(report[name]["ok"] for name in checks)
        degraded = [name for name in informational if not report[name]["ok"]]
        body = {
            "status": "ready" if ready else "not_ready",
            "service": service,
            "checks": report,
            "degraded": degraded,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        refusal = access.refusal(request)
        if refusal is not None:
            return refusal
        # Rendering reads the multiprocess files (Dramatiq services): keep it off the loop.
        payload = await asyncio.to_thread(render_metrics)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/health/liveness", liveness),
            Route("/health/readiness", readiness),
            Route("/metrics", metrics),
        ]
    )
