"""POST /ingest/tick is served by a directly mounted route (routes/ingest.direct_route) ahead of
its documented FastAPI route; both must answer every request byte for byte alike.

Two apps on real Redis, in separate namespaces: one as built, one with the direct route taken
out so the FastAPI route (dependency-solved auth) serves. The same requests go to both.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from redis import Redis

from backend.api.app import create_app
from backend.api.routes import ingest
from backend.settings import Settings
from tests.support.processes import AUTH

pytestmark = pytest.mark.integration

GOOD = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
JSON = {"content-type": "application/json"}


def _tick(event_id: str, **overrides: Any) -> bytes:
    body = {
        "symbol": "BTCUSDT",
        "price": 100.5,
        "volume": 1,
        "source": "direct-route-test",
        "ts": int(time.time() * 1000) - 1000,
        "event_id": event_id,
    } | overrides
    return orjson.dumps(body)


def _requests() -> list[tuple[str, dict[str, str], bytes]]:
    ok = {**JSON, "authorization": GOOD}
    return [
        ("POST", ok, _tick("d-1")),  # accepted
        ("POST", ok, _tick("d-1")),  # duplicate
        ("POST", ok, _tick("d-1", price=7)),  # 409
        ("POST", ok, _tick("d-2", price=-1, symbol="x")),  # 422, two fields
        ("POST", ok, _tick("d-3", ts="2026-01-01T00:00:00")),  # 422, no offset
        ("POST", ok, b"{not json"),  # 422 invalid_json
        ("POST", ok, b"[1]"),  # 422 not an object
        ("POST", ok, b"x" * 70_000),  # 413
        ("POST", {"authorization": GOOD, "content-type": "text/plain"}, _tick("d-4")),  # 415
        ("POST", JSON, _tick("d-5")),  # no credentials
        ("POST", {**JSON, "authorization": "Basic !!!"}, _tick("d-6")),  # bad base64
        ("POST", {**JSON, "authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
         _tick("d-7")),
        ("POST", {**JSON, "authorization": "Bearer abc"}, _tick("d-8")),
        ("POST", {**JSON, "authorization": GOOD.replace("Basic", "bAsIc")}, _tick("d-9")),
        ("GET", ok, b""),  # 405
    ]  # fmt: skip


@pytest.fixture
def clients(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    direct = create_app(settings)
    doc_settings = settings.model_copy(
        update={"redis_namespace": f"{settings.redis_namespace}-doc"}
    )
    documented = create_app(doc_settings)
    documented.router.routes.remove(ingest.direct_route)
    try:
        with TestClient(direct) as a, TestClient(documented) as b:
            yield a, b
    finally:  # create_app configures logging for a server; leave pytest's alone
        root.handlers[:], root.level = handlers, level
        with Redis.from_url(settings.effective_redis_url) as redis:
            for key in redis.scan_iter(match=f"{doc_settings.redis_namespace}:*", count=1000):
                redis.delete(key)


def _answer(client: TestClient, method: str, headers: dict[str, str], body: bytes) -> Any:
    r = client.request(method, "/ingest/tick", headers=headers, content=body)
    kept = sorted((k, v) for k, v in r.headers.items() if k not in ("traceparent", "x-trace-id"))
    return r.status_code, kept, r.content


def test_direct_route_answers_exactly_as_the_documented_route(clients):
    direct, documented = clients
    assert ingest.direct_route in direct.app.router.routes
    statuses = []
    for method, headers, body in _requests():
        got = _answer(direct, method, headers, body)
        assert got == _answer(documented, method, headers, body), (method, headers, body[:40])
        statuses.append(got[0])
    assert statuses == [200, 200, 409, 422, 422, 422, 422, 413, 415, 401, 401, 401, 401, 200, 405]
