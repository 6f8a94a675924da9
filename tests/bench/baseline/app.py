"""The baseline app: `uvicorn tests.bench.baseline.app:create_app --factory`.

What a competent engineer writes without a queue: async FastAPI routes on one event loop, a
psycopg async connection pool (autocommit, so each INSERT is its own committed transaction), the
view computed in-process. Nothing is acknowledged before it is committed and merged, so its
latency and ceiling are those of one Postgres commit per tick in one Python process.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.errors import (
    ApiError,
    api_error_handler,
    http_exception_handler,
    request_validation_handler,
)
from backend.settings import Settings, get_settings
from tests.bench.baseline.ingest import ingest_router
from tests.bench.baseline.stream import stream_router
from tests.bench.baseline.views import Views

POOL_SIZE = 32  # the bench's default connection count: the pool is never what limits it

_basic = HTTPBasic(auto_error=False)


def _ingest_auth(settings: Settings) -> object:
    """HTTP Basic with INGEST_USERNAME / INGEST_PASSWORD, compared in constant time."""
    user = settings.ingest_username.encode()
    password = settings.ingest_password.get_secret_value().encode()

    async def check(
        credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    ) -> None:
        ok = credentials is not None and (
            secrets.compare_digest(credentials.username.encode(), user)
            & secrets.compare_digest(credentials.password.encode(), password)
        )
        if not ok:
            raise ApiError(
                401,
                "unauthorized",
                "HTTP Basic credentials required (INGEST_USERNAME / INGEST_PASSWORD)",
                [{"field": "authorization", "reason": "missing or wrong credentials"}],
                headers={"WWW-Authenticate": 'Basic realm="tickstream-ingest"'},
            )

    return Depends(check)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    views = Views(settings.stale_after)
    pool = AsyncConnectionPool(
        settings.psycopg_url,
        min_size=4,
        max_size=POOL_SIZE,
        open=False,
        kwargs={"autocommit": True, "connect_timeout": 3},
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="Tickstream naive baseline", lifespan=lifespan)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.include_router(
        ingest_router(settings, pool, views),
        dependencies=[_ingest_auth(settings)],  # type: ignore[list-item]
    )
    app.include_router(stream_router(settings, views))

    @app.get("/health/liveness")
    async def liveness() -> dict[str, str]:
        return {"status": "ok"}

    return app
