"""A lost backend is an answer, not a crash: 503 + `Retry-After` in the one error shape.

Routes and gateways let redis-py's and psycopg's exceptions propagate; the handlers here, which
`create_app` installs with `add_failure_handlers`, turn those that mean "the server cannot be
reached or cannot serve now" into

    503 {"error": "unavailable", "message": "Redis is unavailable (ConnectionError)",
         "detail": [{"field": "redis", "reason": "Error 111 connecting to ..."}]}

(`storage_unavailable` and `"field": "postgres"` for PostgreSQL: the codes the routes answered
before this module existed, which clients already match on). `Retry-After` tells a client when a
retry is worth it: Redis comes back (or fails over) in about a second, a PostgreSQL restart takes
longer.

What counts as "down" (and what does not):
- Redis: `ConnectionError` (refused, reset, closed; with its subclasses `BusyLoadingError` while
  the dataset loads after a restart, `MaxConnectionsError` / `MaxClientsReachedError` when full,
  `AuthenticationError` when a restarted server lost its ACL), `TimeoutError`, and the replies a
  healthy client gets from a server that cannot serve now: `ReadOnlyError` (a replica after a
  failover), `OutOfMemoryError`, `TryAgainError` and the cluster's `ClusterDownError`.
  NOT down: `WatchError` (a lost optimistic race, retried by its caller), `ResponseError` and
  `DataError` (a wrong command or wrong type: a bug, so a 500), `NoScriptError` (reloaded by
  redis-py's Script).
- PostgreSQL: `psycopg.OperationalError`, which covers connection failures and lost connections
  (SQLSTATE class 08, `AdminShutdown`, `CannotConnectNow`, `TooManyConnections`), a statement
  cancelled by its timeout (`QueryCanceled`) and `psycopg_pool.PoolTimeout` (no connection within
  `pool.connection(timeout=...)`). NOT down:
  `ProgrammingError`, `IntegrityError`, `DataError`: bugs, so a 500.
- A bare `TimeoutError` (asyncio's) reaching a handler means some backend did not answer within
  a deadline the code set; it is a 503 naming `backend`, since the exception does not say which.

Everything else that escapes a route is a bug: `unexpected_error_handler` still answers JSON in the
same shape (500 `internal_error`, nothing internal in the body) and Starlette re-raises it after
the response so the server logs the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Literal

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors

from backend.api.errors import ApiError, error_body

log = logging.getLogger(__name__)

Backend = Literal["redis", "postgres", "backend"]

REDIS_RETRY_AFTER_S = 1
POSTGRES_RETRY_AFTER_S = 5

REDIS_DOWN: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.OutOfMemoryError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
)
POSTGRES_DOWN: tuple[type[Exception], ...] = (psycopg.OperationalError,)
DEADLINE_MISSED: tuple[type[Exception], ...] = (TimeoutError,)

_NAMES: dict[Backend, str] = {"redis": "Redis", "postgres": "PostgreSQL", "backend": "a backend"}
_CODES: dict[Backend, str] = {
    "redis": "unavailable",
    "postgres": "storage_unavailable",
    "backend": "unavailable",
}
_RETRY_AFTER: dict[Backend, int] = {
    "redis": REDIS_RETRY_AFTER_S,
    "postgres": POSTGRES_RETRY_AFTER_S,
    "backend": REDIS_RETRY_AFTER_S,
}


def which_backend_is_down(exc: BaseException) -> Backend | None:
    """The backend this exception says is unreachable, or None if it is not an outage.

    Looks inside exception groups (a task group that lost Redis raises one) but not along
    `__cause__`: a route that caught an outage and raised something else meant something else.
    """
    for leaf in _leaves(exc):
        if isinstance(leaf, REDIS_DOWN):
            return "redis"
        if isinstance(leaf, POSTGRES_DOWN):
            return "postgres"
        if isinstance(leaf, DEADLINE_MISSED):
            return "backend"
    return None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def backend_unavailable(backend: Backend, exc: BaseException, message: str = "") -> ApiError:
    """The 503 for a lost backend; `message` replaces the default one (the kind is kept in it)."""
    kind = type(exc).__name__
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else kind
    return ApiError(
        503,
        _CODES[backend],
        message or f"{_NAMES[backend]} is unavailable ({kind})",
        [{"field": backend, "reason": reason}],
        headers={"Retry-After": str(_RETRY_AFTER[backend])},
    )


def redis_unavailable(exc: BaseException, message: str = "") -> ApiError:
    return backend_unavailable("redis", exc, message)


def postgres_unavailable(exc: BaseException, message: str = "") -> ApiError:
    return backend_unavailable("postgres", exc, message)


def _render(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.error, error.message, error.detail),
        status_code=error.status,
        headers=error.headers,
    )


async def backend_down_handler(request: Request, exc: Exception) -> JSONResponse:
    """Registered for REDIS_DOWN, POSTGRES_DOWN and DEADLINE_MISSED."""
    backend = which_backend_is_down(exc) or "backend"
    log.warning(
        "%s %s: %s unavailable (%s: %s)",
        request.method,
        request.url.path,
        backend,
        type(exc).__name__,
        exc,
    )
    return _render(backend_unavailable(backend, exc))


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Last resort: still the one JSON shape (an outage wrapped in a group is still a 503)."""
    backend = which_backend_is_down(exc)
    if backend is not None:
        return await backend_down_handler(request, exc)
    return JSONResponse(
        error_body("internal_error", "unexpected error; it has been logged", []), status_code=500
    )


def add_failure_handlers(app: FastAPI) -> None:
    for exc_class in (*REDIS_DOWN, *POSTGRES_DOWN, *DEADLINE_MISSED):
        app.add_exception_handler(exc_class, backend_down_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
