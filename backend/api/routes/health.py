"""Liveness and readiness probes (no auth: load balancers call them)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend.api.deps import Resources
from backend.api.failures import POSTGRES_RETRY_AFTER_S, REDIS_RETRY_AFTER_S
from backend.storage.probe import ping_postgres

router = APIRouter(tags=["health"])


@router.get("/health/liveness")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


async def _check(coro: Any, timeout: float = 2.0) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(coro, timeout)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()[:200]}
    return {
        "ok": True,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        **(detail or {}),
    }


@router.get("/health/readiness")
async def readiness(res: Resources) -> JSONResponse:
    async def redis_ok() -> None:
        await res.probes.check_redis()

    async def postgres_ok() -> None:
        await ping_postgres(res.settings.psycopg_url)

    async def broker_ok() -> dict[str, Any]:
        health = await res.probes.broker(
            heartbeat_timeout_ms=res.settings.heartbeat_timeout_ms, now_ms=time.time() * 1000
        )
        return {"workers": health.workers, "queue_depth": health.queue_depth}

    names = ("redis", "postgres", "broker")
    results = await asyncio.gather(_check(redis_ok()), _check(postgres_ok()), _check(broker_ok()))
    checks = dict(zip(names, results, strict=True))
    failed = [name for name, check in checks.items() if not check["ok"]]
    body = {"status": "ok" if not failed else "unavailable", "failed": failed, "checks": checks}
    if not failed:
        return JSONResponse(body)
    wait_s = POSTGRES_RETRY_AFTER_S if "postgres" in failed else REDIS_RETRY_AFTER_S
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(wait_s)})
