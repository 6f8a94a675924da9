"""Every route of the API with its backends up, then with Redis stopped, then with PostgreSQL
stopped: a lost backend is a 503 JSON answer with `Retry-After` naming what is down, never a 500.

The module runs its own Redis and PostgreSQL (the embedded servers, on ports of its own) because
it stops them; the API is a real uvicorn process pointed at them. Routes are enumerated from
`create_app()`, so a new route without a line in EXPECTED fails here until someone says what it
answers while each backend is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from pydantic import SecretStr
from starlette.routing import BaseRoute, Route

from backend.api.app import create_app
from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.settings import Settings
from backend.storage.migrate import upgrade
from tests.support.processes import basic_auth_header, make_settings, running, settings_env
from tests.support.servers import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

Backend = Literal["redis", "postgres"]
API_KEY = "backend-down-key"
SYMBOL = "BTCUSDT"
PATH_VALUES = {"symbol": SYMBOL, "rule_id": "no-such-rule", "replay_id": "0000000000"}
_REPLAY = {"symbols": [SYMBOL], "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}


# --- what a route is sent, and what it may answer -------------------------------------------
@dataclass(frozen=True)
class Call:
    """A valid request: right auth, right body. `auth` picks the Authorization header."""

    json: Any = None
    params: dict[str, str] = field(default_factory=dict)
    auth: Literal["basic", "bearer"] = "basic"
    stream: bool = False  # SSE: read the first event, then hang up


@dataclass(frozen=True)
class Works:
    """Answers as with every backend up: this route does not need the stopped one."""

    status: int = 200


@dataclass(frozen=True)
class Down:
    """503 in the one error shape, `Retry-After`, `detail` naming the backend."""

    backend: Backend


@dataclass(frozen=True)
class NotReady:
    """The readiness probe: 503 with its own body, `failed` naming the stopped backend."""

    failed: tuple[str, ...]


Answer = Works | Down | NotReady


@dataclass(frozen=True)
class Expect:
    call: Call
    up: Works
    redis_down: Answer
    postgres_down: Answer


def _tick() -> Call:
    return Call(json=_TickBody())


class _TickBody:
    """A fresh valid tick each time it is sent (a repeated event_id would be a duplicate)."""


def _ticks() -> Call:
    return Call(json=[_TickBody(), _TickBody()])


_AGG = {"symbol": SYMBOL, "view": {"last_price": 101.0}, "ts": "2026-01-01T00:00:00Z"}
_REDIS = Down("redis")
_PG = Down("postgres")
OK = Works()

EXPECTED: dict[tuple[str, str], Expect] = {
    # Reads of the views and the bus: Redis only.
    ("GET", "/symbols"): Expect(Call(), OK, _REDIS, OK),
    ("GET", "/symbols/{symbol}"): Expect(Call(), OK, _REDIS, OK),
    ("GET", "/tickets/{symbol}"): Expect(Call(), OK, _REDIS, OK),
    # No calc worker runs here, so the symbol has a view but no window state: 404 when up.
    ("GET", "/symbols/{symbol}/gaps"): Expect(Call(), Works(404), _REDIS, Works(404)),
    # Stored history: PostgreSQL only.
    ("GET", "/symbols/{symbol}/history"): Expect(Call(), OK, OK, _PG),
    ("GET", "/tickets/{symbol}/history"): Expect(Call(), OK, OK, _PG),
    # Candles merge the outbox (Redis) with the rollups (PostgreSQL): both.
    ("GET", "/symbols/{symbol}/candles"): Expect(Call(), OK, _REDIS, _PG),
    # Ingest never touches PostgreSQL.
    ("POST", "/ingest/tick"): Expect(_tick(), OK, _REDIS, OK),
    ("POST", "/ingest/ticks"): Expect(_ticks(), OK, _REDIS, OK),
    ("POST", "/internal/agg-update"): Expect(Call(json=_AGG, auth="bearer"), OK, _REDIS, OK),
    ("GET", "/feeder/config"): Expect(Call(), OK, _REDIS, OK),
    ("PUT", "/feeder/config"): Expect(Call(json={"tps": 7}), OK, _REDIS, OK),
    ("POST", "/feeder/status"): Expect(Call(json={"feeder_id": "down-1"}), OK, _REDIS, OK),
    ("GET", "/feeder/status"): Expect(Call(), OK, _REDIS, OK),
    ("GET", "/stats"): Expect(Call(), OK, _REDIS, OK),
    ("GET", "/stats/history"): Expect(Call(params={"minutes": "1"}), OK, _REDIS, OK),
    ("GET", "/admin/dead-letters"): Expect(Call(), OK, _REDIS, OK),
    ("POST", "/admin/dead-letters/requeue"): Expect(Call(json={}), OK, _REDIS, OK),
    # Every symbol: Redis's hashes and PostgreSQL's distinct symbols, so it needs both.
    ("POST", "/admin/rebuild"): Expect(Call(json={}), Works(202), _REDIS, _PG),
    ("GET", "/admin/rebuild"): Expect(Call(), OK, _REDIS, OK),
    # Alert rules live in PostgreSQL (the rule here does not exist: 404 when it can be read).
    # A rule stored while Redis is down is created: its mirror is resynced when Redis returns.
    ("POST", "/alerts/rules"): Expect(
        Call(
            json={
                "name": "down",
                "symbol": SYMBOL,
                "field": "last_price",
                "condition": "above",
                "value": 1.0,
            }
        ),
        Works(201),
        Works(201),
        _PG,
    ),
    ("GET", "/alerts/rules"): Expect(Call(), OK, OK, _PG),
    ("GET", "/alerts/rules/{rule_id}"): Expect(Call(), Works(404), Works(404), _PG),
    ("PATCH", "/alerts/rules/{rule_id}"): Expect(
        Call(json={"name": "x"}), Works(404), Works(404), _PG
    ),
    ("DELETE", "/alerts/rules/{rule_id}"): Expect(Call(), Works(404), Works(404), _PG),
    ("GET", "/alerts/events"): Expect(Call(), OK, OK, _PG),
    # Replays live in Redis (record, namespace) and read PostgreSQL only in the history service,
    # or to resolve stored rules (none here).
    ("POST", "/replays"): Expect(Call(json=_REPLAY), Works(202), _REDIS, Works(202)),
    ("GET", "/replays"): Expect(Call(), OK, _REDIS, OK),
    **{
        (method, f"/replays/{{replay_id}}{tail}"): Expect(Call(), Works(404), _REDIS, Works(404))
        for method, tail in [
            ("GET", ""),
            ("POST", "/pause"),
            ("POST", "/resume"),
            ("POST", "/cancel"),
            ("GET", "/symbols/{symbol}"),
            ("GET", "/symbols/{symbol}/candles"),
            ("GET", "/symbols/{symbol}/gaps"),
            ("GET", "/alerts"),
        ]
    },
    # A test-fire reads the rule from the workers' mirror and queues in Redis only.
    ("POST", "/alerts/rules/{rule_id}/test"): Expect(Call(), Works(404), _REDIS, Works(404)),
    # Special on purpose: /metrics serves this process's own metrics when Redis is down, the
    # probes report rather than fail; /stream only redirects to the realtime gateway.
    ("GET", "/metrics"): Expect(Call(), OK, OK, OK),
    ("GET", "/stream"): Expect(Call(), Works(307), Works(307), Works(307)),
    ("GET", "/health/liveness"): Expect(Call(), OK, OK, OK),
    ("GET", "/health/readiness"): Expect(
        Call(), OK, NotReady(("redis", "broker")), NotReady(("postgres",))
    ),
    # The docs need no backend.
    ("GET", "/openapi.json"): Expect(Call(), OK, OK, OK),
    ("GET", "/docs"): Expect(Call(), OK, OK, OK),
    ("GET", "/docs/oauth2-redirect"): Expect(Call(), OK, OK, OK),
    ("GET", "/redoc"): Expect(Call(), OK, OK, OK),
}


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (HEAD comes with GET).

    The OpenAPI schema lists every documented operation (public API); the walk over
    `app.routes` adds the undocumented ones (the docs pages, any `include_in_schema=False`),
    descending into included routers, which FastAPI keeps as wrappers around the original.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        app = create_app(Settings())
    finally:  # create_app configures logging for a server; leave pytest's alone
        root.handlers[:], root.level = handlers, level
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    routes |= set(_walk(app.routes, ""))
    assert ("POST", "/ingest/tick") in routes, sorted(routes)  # the enumeration still works
    return sorted(routes)


def _walk(routes: Sequence[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    yield method, prefix + route.path


ROUTES = app_routes()


def _id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


def _expectation(route: tuple[str, str]) -> Expect:
    expect = EXPECTED.get(route)
    assert expect is not None, (
        f"{_id(route)} has no expectation: add what it answers with each backend down to "
        "EXPECTED in tests/integration/test_backend_down.py"
    )
    return expect


# --- the deployment: private servers, one API -----------------------------------------------
@dataclass
class Deployment:
    redis: EmbeddedRedis
    postgres: EmbeddedPostgres
    client: httpx.Client
    ticks_sent: int = 0

    def only_down(self, backend: Backend | None) -> None:
        """Stop `backend`, run the other; return once readiness reports exactly that."""
        for name, server in (("redis", self.redis), ("postgres", self.postgres)):
            if name == backend:
                server.stop()
            else:
                server.start()
        failed = {None: [], "redis": ["redis", "broker"], "postgres": ["postgres"]}[backend]
        wait_for(lambda: self._readiness_failed() == failed, 30, what=f"readiness {failed}")
        if backend != "postgres":  # the pool drops the connections the restart broke
            wait_for(lambda: self.send(("GET", "/symbols/{symbol}/history")).status_code == 200, 15)

    def _readiness_failed(self) -> list[str]:
        return self.client.get("/health/readiness").json().get("failed")

    def send(self, route: tuple[str, str]) -> httpx.Response:
        method, template = route
        call = _expectation(route).call
        headers = {
            "x-api-key": API_KEY,
            "authorization": f"Bearer {Settings().internal_token.get_secret_value()}"
            if call.auth == "bearer"
            else basic_auth_header(),
        }
        request = self.client.build_request(
            method,
            template.format(**PATH_VALUES),
            params=call.params,
            json=self._body(call.json),
            headers=headers,
        )
        response = self.client.send(request, stream=call.stream)
        if call.stream:
            try:
                first = next(response.iter_raw())
                assert first.startswith(b": connected"), first
            finally:
                response.close()
        return response

    def _body(self, template: Any) -> Any:
        if isinstance(template, list):
            return [self._body(item) for item in template]
        if isinstance(template, _TickBody):
            self.ticks_sent += 1
            return {
                "symbol": SYMBOL,
                "price": 100.0 + self.ticks_sent,
                "volume": 1.0,
                "source": "down-test",
                "ts": int(time.time() * 1000) - 1000,
                "event_id": f"down-{self.ticks_sent}",
            }
        return template


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root: Path = tmp_path_factory.mktemp("backend-down")
    redis = EmbeddedRedis(root / "redis", free_port())
    postgres = EmbeddedPostgres(root / "pg", free_port())
    with redis, postgres:
        pg_url = postgres.create_database("tickstream")
        upgrade(Settings().model_copy(update={"pg_url": pg_url}))
        settings = make_settings(redis.url, pg_url, api_key=SecretStr(API_KEY))
        with running(settings_env(settings), root / "logs") as procs:
            procs.start_api()
            with httpx.Client(base_url=procs.api_url, timeout=15) as client:
                deployment = Deployment(redis, postgres, client)
                assert deployment.send(("POST", "/internal/agg-update")).status_code == 200
                yield deployment
            assert procs.procs["api"].poll() is None, "the API died: " + procs.log("api")[-3000:]


# --- the checks ------------------------------------------------------------------------------
def assert_answer(response: httpx.Response, answer: Answer) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    try:
        text = response.text[:500]
    except httpx.ResponseNotRead:  # the SSE stream, closed after its first event
        text = ""
    assert response.status_code != 500, f"{where}: 500 {text}"
    if isinstance(answer, Works):
        assert response.status_code == answer.status, f"{where}: {response.status_code} {text}"
        return
    assert response.status_code == 503, f"{where}: {response.status_code} {text}"
    assert int(response.headers["Retry-After"]) > 0, where
    body = response.json()
    if isinstance(answer, NotReady):
        assert body["status"] == "unavailable" and sorted(body["failed"]) == sorted(answer.failed)
        return
    assert set(body) == {"error", "message", "detail"}, (where, body)
    code = {"redis": "unavailable", "postgres": "storage_unavailable"}[answer.backend]
    assert body["error"] == code, (where, body)
    assert [d["field"] for d in body["detail"]] == [answer.backend], (where, body)
    assert all(d["reason"] for d in body["detail"]), (where, body)


def test_every_route_has_an_expectation_and_every_expectation_a_route() -> None:
    assert set(ROUTES) == set(EXPECTED), {
        "routes without an expectation": sorted(set(ROUTES) - set(EXPECTED)),
        "expectations without a route": sorted(set(EXPECTED) - set(ROUTES)),
    }


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_with_every_backend_up(deployment: Deployment, route: tuple[str, str]) -> None:
    """The baseline: the request is valid, so a 503 below is the outage's doing."""
    expect = _expectation(route)
    deployment.only_down(None)
    assert_answer(deployment.send(route), expect.up)


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_with_redis_stopped(deployment: Deployment, route: tuple[str, str]) -> None:
    expect = _expectation(route)
    deployment.only_down("redis")
    assert_answer(deployment.send(route), expect.redis_down)


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_with_postgres_stopped(deployment: Deployment, route: tuple[str, str]) -> None:
    expect = _expectation(route)
    deployment.only_down("postgres")
    assert_answer(deployment.send(route), expect.postgres_down)
