"""Hand-written hostile input against a real API: every request is refused with a 4xx that names
the field and the reason, nothing is ever a 5xx, and no refused request writes anything."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from redis import Redis

from backend.bus.keys import Keys
from backend.settings import Settings
from tests.support.processes import AUTH, Processes, make_settings, running, settings_env

pytestmark = pytest.mark.integration


def good(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "price": 100.0,
        "volume": 1.0,
        "source": "hostile",
        "ts": int(time.time() * 1000),
        "event_id": "hostile-1",
    }
    body.update(overrides)
    return body


def raw(**overrides: Any) -> bytes:
    return orjson.dumps(good(**overrides))


def without(name: str) -> bytes:
    body = good()
    body.pop(name)
    return orjson.dumps(body)


def splice(field: str, literal: str) -> bytes:
    """A body with `field` set to a literal orjson would never write (NaN, 1e400, ...)."""
    return raw(**{field: "__X__"}).replace(b'"__X__"', literal.encode())


JSON = {"content-type": "application/json"}
CASES: dict[str, tuple[bytes, dict[str, str], tuple[int, ...], str | None]] = {
    # name: (body, headers, allowed statuses, field the error must name)
    "bare NaN": (splice("price", "NaN"), JSON, (422,), None),
    "bare Infinity": (splice("price", "Infinity"), JSON, (422,), None),
    "1e400": (splice("price", "1e400"), JSON, (422,), None),
    "huge price": (raw(price=1e20), JSON, (422,), "price"),
    "negative price": (raw(price=-5.0), JSON, (422,), "price"),
    "negative volume": (raw(volume=-1.0), JSON, (422,), "volume"),
    "price as string": (raw(price="100"), JSON, (422,), "price"),
    "seconds not ms": (raw(ts=int(time.time())), JSON, (422,), "ts"),
    "naive ISO time": (raw(ts="2026-11-21T14:30:00"), JSON, (422,), "ts"),
    "far future": (raw(ts="2099-01-01T00:00:00Z"), JSON, (422,), "ts"),
    "unicode symbol": (raw(symbol="BTC€"), JSON, (422,), "symbol"),
    "control char symbol": (raw(symbol="BTC\u0000USD"), JSON, (422,), "symbol"),
    "newline in event_id": (raw(event_id="a\nb"), JSON, (422,), "event_id"),
    "missing price": (without("price"), JSON, (422,), "price"),
    "missing event_id": (without("event_id"), JSON, (422,), "event_id"),
    "extra field": (raw(leverage=100), JSON, (422,), "leverage"),
    "not an object": (b"[1, 2, 3]", JSON, (422,), None),
    "empty body": (b"", JSON, (422,), None),
    "truncated JSON": (raw()[:-5], JSON, (422,), None),
    "10 MB body": (b'{"symbol": "' + b"A" * 10_000_000 + b'"}', JSON, (413,), None),
    "wrong content type": (raw(), {"content-type": "text/plain"}, (415,), "content-type"),
    "form encoded": (b"symbol=BTCUSDT", {"content-type": "application/x-www-form-urlencoded"},
                     (415,), "content-type"),
}  # fmt: skip


@pytest.fixture(scope="module")
def hostile_settings(servers: Any) -> Settings:
    return make_settings(servers.redis_url, servers.pg_url)


@pytest.fixture(scope="module")
def hostile_api(
    hostile_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Processes]:
    env = settings_env(hostile_settings)
    with running(env, tmp_path_factory.mktemp("hostile")) as procs:
        procs.start_api()  # no worker: whatever a request wrote would stay in the queue/outbox
        yield procs
        assert "Traceback" not in procs.log("api"), procs.log("api")[-3000:]


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_body_is_refused_with_a_named_reason(hostile_api: Processes, name: str) -> None:
    body, headers, statuses, field = CASES[name]
    response = httpx.post(
        hostile_api.api_url + "/ingest/tick", content=body, headers=headers, auth=AUTH, timeout=30
    )
    assert response.status_code in statuses, (name, response.status_code, response.text[:300])
    answer = response.json()
    assert answer["error"] and answer["message"], answer
    details = answer.get("detail") or []
    assert details and all(d["field"] and d["reason"] for d in details), answer
    if field is not None:
        assert field in [d["field"] for d in details], answer


def test_wrong_auth_is_refused_before_anything_else(hostile_api: Processes) -> None:
    for auth in (None, ("ingest", "wrong"), ("", ""), ("ingest\u0000", "x")):
        response = httpx.post(hostile_api.api_url + "/ingest/tick", json=good(), auth=auth)
        assert response.status_code == 401
        assert response.json()["detail"][0]["field"] == "authorization"


def test_nothing_refused_was_written(hostile_api: Processes, hostile_settings: Settings) -> None:
    """Runs after the cases above (file order): the queue, the outbox, the dedup space and the
    stats of accepted ticks are all empty."""
    keys = Keys.from_settings(hostile_settings)
    redis = Redis.from_url(hostile_settings.effective_redis_url)
    try:
        assert redis.llen(keys.queue_list()) == 0
        assert redis.xlen(keys.outbox) == 0
        assert not list(redis.scan_iter(match=keys.dedup_prefix + "*", count=1000))
        assert not list(redis.scan_iter(match=keys.dedup_hashes("*") + "*", count=1000))
        assert int(redis.hget(keys.stats, "ingest_accepted") or 0) == 0
    finally:
        redis.close()
