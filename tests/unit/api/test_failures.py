"""Which exceptions mean "a backend is down", and the answer each one gets (no servers needed)."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout
from redis import exceptions as redis_errors

from backend.api.errors import ApiError, api_error_handler
from backend.api.failures import (
    add_failure_handlers,
    postgres_unavailable,
    redis_unavailable,
    which_backend_is_down,
)

REDIS_DOWN = [
    redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    redis_errors.TimeoutError("Timeout reading from socket"),
    redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
    redis_errors.MaxConnectionsError("Too many connections"),
    redis_errors.AuthenticationError("invalid username-password pair"),
    redis_errors.ReadOnlyError("You can't write against a read only replica."),
    redis_errors.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
    redis_errors.TryAgainError("TRYAGAIN"),
    redis_errors.ClusterDownError("CLUSTERDOWN The cluster is down"),
]
POSTGRES_DOWN = [
    psycopg.OperationalError("connection failed: Connection refused"),
    PoolTimeout("couldn't get a connection after 2.00 sec"),
    pg_errors.AdminShutdown("terminating connection due to administrator command"),
    pg_errors.CannotConnectNow("the database system is starting up"),
    pg_errors.ConnectionFailure("server closed the connection unexpectedly"),
]
NOT_AN_OUTAGE = [
    redis_errors.WatchError("Watched variable changed."),
    redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    redis_errors.DataError("Invalid input of type: 'NoneType'"),
    redis_errors.NoScriptError("NOSCRIPT No matching script."),
    psycopg.ProgrammingError("syntax error at or near SELEC"),
    pg_errors.UniqueViolation("duplicate key value violates unique constraint"),
    ValueError("a bug"),
    KeyError("a bug"),
]


def _name(exc: BaseException) -> str:
    return type(exc).__name__


@pytest.mark.parametrize("exc", REDIS_DOWN, ids=_name)
def test_redis_outages_are_named_redis(exc: Exception) -> None:
    assert which_backend_is_down(exc) == "redis"


@pytest.mark.parametrize("exc", POSTGRES_DOWN, ids=_name)
def test_postgres_outages_are_named_postgres(exc: Exception) -> None:
    assert which_backend_is_down(exc) == "postgres"


@pytest.mark.parametrize("exc", NOT_AN_OUTAGE, ids=_name)
def test_bugs_and_lost_races_are_not_outages(exc: Exception) -> None:
    assert which_backend_is_down(exc) is None


def test_a_missed_deadline_is_an_outage_of_an_unnamed_backend() -> None:
    assert which_backend_is_down(TimeoutError()) == "backend"


def test_an_outage_inside_an_exception_group_is_found() -> None:
    group = ExceptionGroup("task group", [ValueError("x"), redis_errors.ConnectionError("gone")])
    assert which_backend_is_down(group) == "redis"
    assert which_backend_is_down(ExceptionGroup("g", [ValueError("x")])) is None


def test_the_error_builders_keep_the_codes_clients_match_on() -> None:
    redis = redis_unavailable(redis_errors.ConnectionError("refused"))
    assert (redis.status, redis.error, redis.headers) == (503, "unavailable", {"Retry-After": "1"})
    assert redis.message == "Redis is unavailable (ConnectionError)"
    assert redis.detail == [{"field": "redis", "reason": "refused"}]
    pg = postgres_unavailable(PoolTimeout("no connection"), "history is unavailable")
    assert (pg.status, pg.error, pg.headers) == (503, "storage_unavailable", {"Retry-After": "5"})
    assert pg.message == "history is unavailable"
    assert pg.detail == [{"field": "postgres", "reason": "no connection"}]


def test_the_reason_is_one_bounded_line() -> None:
    exc = psycopg.OperationalError("first line\nsecond line with a DETAIL\n" + "x" * 1000)
    assert postgres_unavailable(exc).detail == [{"field": "postgres", "reason": "first line"}]
    assert redis_unavailable(redis_errors.TimeoutError()).detail[0]["reason"] == "TimeoutError"


class Client:
    """An app whose only route raises the exception it is given, with the product's handlers."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.app.add_exception_handler(ApiError, api_error_handler)
        add_failure_handlers(self.app)
        self.raising: BaseException = RuntimeError("unset")

        @self.app.get("/raise")
        async def raise_it() -> None:
            raise self.raising

    def answer(self, exc: BaseException) -> httpx.Response:
        self.raising = exc
        transport = httpx.ASGITransport(self.app, raise_app_exceptions=False)

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.get("/raise")

        return asyncio.run(call())


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.mark.parametrize("exc", REDIS_DOWN, ids=_name)
def test_a_lost_redis_answers_503_json_naming_redis(client: Client, exc: Exception) -> None:
    response = client.answer(exc)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["error"] == "unavailable"
    assert body["message"] == f"Redis is unavailable ({type(exc).__name__})"
    assert body["detail"] == [{"field": "redis", "reason": str(exc)}]


@pytest.mark.parametrize("exc", POSTGRES_DOWN, ids=_name)
def test_a_lost_postgres_answers_503_json_naming_postgres(client: Client, exc: Exception) -> None:
    response = client.answer(exc)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["error"] == "storage_unavailable"
    assert body["message"] == f"PostgreSQL is unavailable ({type(exc).__name__})"
    assert body["detail"] == [{"field": "postgres", "reason": str(exc)}]


def test_a_missed_deadline_answers_503(client: Client) -> None:
    response = client.answer(TimeoutError())
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["detail"] == [{"field": "backend", "reason": "TimeoutError"}]


def test_an_outage_wrapped_in_a_group_still_answers_503(client: Client) -> None:
    response = client.answer(ExceptionGroup("g", [redis_errors.ConnectionError("gone")]))
    assert response.status_code == 503 and response.json()["detail"][0]["field"] == "redis"


@pytest.mark.parametrize("exc", NOT_AN_OUTAGE, ids=_name)
def test_anything_else_is_a_500_in_the_same_json_shape(client: Client, exc: Exception) -> None:
    response = client.answer(exc)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert response.json() == {
        "error": "internal_error",
        "message": "unexpected error; it has been logged",
        "detail": [],
    }
