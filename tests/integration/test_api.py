"""The API's edges against real Redis and Postgres: auth, limits, probes, SSE, internal updates,
and ingest that keeps working while Postgres is down."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from pydantic import SecretStr

from backend.settings import Settings
from tests.integration.gateway.streams import FAST, sse
from tests.support.processes import AUTH, Processes, running, settings_env
from tests.support.servers import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.verify import stored_count, stored_ticks
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def tick(i: int, symbol: str = "BTCUSDT", **overrides: Any) -> dict[str, Any]:
    body = {
        "symbol": symbol,
        "price": 100.0 + i,
        "volume": 1.0,
        "source": "api-test",
        "ts": int(time.time() * 1000) - 1000,
        "event_id": f"api-{i}",
    }
    body.update(overrides)
    return body


def test_auth_limits_and_content_type(procs: Processes):
    procs.start_api()
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        r = client.post("/ingest/tick", json=tick(1))
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic")
        assert r.json()["detail"][0]["field"] == "authorization"
        r = client.post("/ingest/tick", json=tick(1), auth=("ingest", "wrong"))
        assert r.status_code == 401
        r = client.post(
            "/ingest/tick",
            content=b"x" * 70_000,
            auth=AUTH,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        r = client.post(
            "/ingest/tick",
            content=orjson.dumps(tick(1)),
            auth=AUTH,
            headers={"content-type": "text/plain"},
        )
        assert r.status_code == 415 and r.json()["detail"][0]["field"] == "content-type"
        r = client.post("/ingest/ticks", json={"not": "a list"}, auth=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"
        r = client.post("/ingest/ticks", json=[tick(i) for i in range(5001)], auth=AUTH)
        assert r.status_code == 422
        batch = [tick(1), tick(2, price=-1), tick(1), tick(1, price=5.0), tick(3, bogus=True)]
        r = client.post("/ingest/ticks", json=batch, auth=AUTH)
        assert r.status_code == 200
        body = r.json()
        assert body["accepted"] == 1 and body["duplicates"] == 1
        assert [item["index"] for item in body["rejected"]] == [1, 3, 4]
        assert body["rejected"][0]["errors"] == [
            {"field": "price", "reason": "must be > 0, between 1e-12 and 1e+12"}
        ]
        assert body["rejected"][2]["errors"] == [{"field": "bogus", "reason": "unknown field"}]
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


def test_reads_need_the_api_key_when_it_is_set(settings: Settings, tmp_path):
    keyed = settings.model_copy(update={"api_key": SecretStr("s3cret")})
    with running(settings_env(keyed), tmp_path) as procs:
        procs.start_api()
        with httpx.Client(base_url=procs.api_url, timeout=5) as client:
            assert client.post("/ingest/tick", json=tick(1), auth=AUTH).status_code == 200
            assert client.get("/symbols").status_code == 401
            assert client.get("/metrics").status_code == 200  # loopback is in METRICS_ALLOW_CIDRS
            assert client.get("/symbols", headers={"x-api-key": "nope"}).status_code == 401
            assert client.get("/symbols", headers={"x-api-key": "s3cret"}).status_code == 200
            assert client.get("/health/liveness").status_code == 200  # probes stay open


def test_metrics_need_an_allowed_address_or_the_key(settings: Settings, tmp_path):
    """The test's client (127.0.0.1) is outside this allow list, so only the key lets it in."""
    keyed = settings.model_copy(
        update={"api_key": SecretStr("s3cret"), "metrics_allow_cidrs": ["10.0.0.0/8"]}
    )
    with running(settings_env(keyed), tmp_path) as procs:
        procs.start_api()
        with httpx.Client(base_url=procs.api_url, timeout=5) as client:
            refused = client.get("/metrics")
            assert refused.status_code == 401
            assert refused.json()["detail"][0]["field"] == "x-api-key"
            assert client.get("/metrics", headers={"x-api-key": "nope"}).status_code == 401
            assert client.get("/metrics", headers={"x-api-key": "s3cret"}).status_code == 200
            bearer = client.get("/metrics", headers={"authorization": "Bearer s3cret"})
            assert bearer.status_code == 200
            assert "process_resident_memory_bytes" in bearer.text


def test_internal_agg_update_stores_and_republishes(procs: Processes, settings: Settings):
    procs.start_api()
    view = {"last_price": 42.0, "last_ts": "2026-11-21T10:00:00Z", "ticks_total": 3}
    bearer = {"authorization": "Bearer internal-dev-token"}
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        body = {"symbol": "EXT1", "view": view, "ts": "2026-11-21T10:00:00Z"}
        assert client.post("/internal/agg-update", json=body).status_code == 401
        r = client.post(
            "/internal/agg-update",
            json=body,
            headers={"authorization": "Bearer internal-dev-token"},
        )
        assert r.status_code == 200, r.text
        assert client.get("/symbols/EXT1").json()["last_price"] == 42.0
        # An older view after a newer one does not move W backwards.
        older = {**body, "view": {**view, "last_price": 41.0, "last_ts": "2026-11-21T09:59:59Z"}}
        r = client.post("/internal/agg-update", json=older, headers=bearer)
        assert r.status_code == 200 and r.json()["status"] == "superseded", r.text
        assert client.get("/symbols/EXT1").json()["last_price"] == 42.0
        newer = {**body, "view": {**view, "last_price": 43.0, "last_ts": "2026-11-21T10:00:01Z"}}
        assert client.post("/internal/agg-update", json=newer, headers=bearer).json() == {
            "status": "stored",
            "symbol": "EXT1",
        }
        assert client.get("/symbols/EXT1").json()["last_price"] == 43.0
        unreadable = {**body, "view": {**view, "last_ts": "yesterday"}}
        r = client.post("/internal/agg-update", json=unreadable, headers=bearer)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "view.last_ts"
        bad = {**body, "symbol": "lower"}
        r = client.post(
            "/internal/agg-update", json=bad, headers={"authorization": "Bearer internal-dev-token"}
        )
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "symbol"


def test_stream_answers_307_to_the_gateway_with_the_query_kept(procs: Processes):
    procs.start_api()
    procs.start_gateway(extra_env=FAST)
    query = "symbols=SSE1&types=tick.received&key=k%2F1"
    r = httpx.get(f"{procs.api_url}/stream?{query}", timeout=5)
    assert r.status_code == 307
    assert r.headers["location"] == f"{procs.gateway_url}/stream?{query}"
    # A client that follows it (as EventSource and curl -L do) is on the gateway's stream.
    with sse(procs.api_url + "/stream?symbols=SSE1", follow_redirects=True) as stream:
        stream.wait_events("snapshot", 1)
        with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
            client.post("/ingest/tick", json=tick(1, symbol="OTHER"))
            client.post("/ingest/tick", json=tick(2, symbol="SSE1"))
        (received,) = stream.wait_events("tick.received", 1)
    assert received.json()["symbol"] == "SSE1" and received.id is not None


def test_postgres_down_ingest_and_views_continue_and_rows_arrive_after(
    settings: Settings, tmp_path
):
    pg = urlsplit(settings.psycopg_url)
    proxy = TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432).start()
    via_proxy = settings.psycopg_url.replace(f"{pg.hostname}:{pg.port}", f"127.0.0.1:{proxy.port}")
    env = settings_env(settings.model_copy(update={"pg_url": via_proxy}))
    with running(env, tmp_path) as procs:
        procs.start_api()
        procs.start_worker()
        with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
            assert (
                client.post("/ingest/ticks", json=[tick(i) for i in range(10)]).json()["accepted"]
                == 10
            )
            wait_for(lambda: stored_count(settings.pg_url) == 10, 15, what="rows before the outage")
            proxy.cut()
            ready = client.get("/health/readiness")
            assert ready.status_code == 503 and ready.json()["failed"] == ["postgres"]
            for i in range(10, 60):
                r = client.post("/ingest/tick", json=tick(i))
                assert r.status_code == 200 and r.json()["status"] == "accepted"
            view = wait_for(
                lambda: (v := client.get("/symbols/BTCUSDT").json()).get("ticks_total") == 60 and v,
                15,
                what="views while Postgres is down",
            )
            assert view["last_event_id"] == "api-59"
            hist = client.get("/symbols/BTCUSDT/history")
            assert hist.status_code == 503, hist.text[:300]
            time.sleep(2)
            assert stored_count(settings.pg_url) == 10  # nothing could be written meanwhile
            proxy.restore()
            wait_for(
                lambda: stored_count(settings.pg_url) == 60, 30, what="rows after Postgres returned"
            )
            assert set(stored_ticks(settings.pg_url)) == {f"api-{i}" for i in range(60)}
            wait_for(
                lambda: client.get("/health/readiness").status_code == 200, 15, what="ready again"
            )
    proxy.cut()


def test_readiness_names_an_unreachable_postgres(settings: Settings, tmp_path):
    dead = settings.model_copy(
        update={"pg_url": f"postgresql://postgres@127.0.0.1:{free_port()}/nope"}
    )
    with running(settings_env(dead), tmp_path) as procs:
        procs.start_api()
        r = httpx.get(procs.api_url + "/health/readiness", timeout=10)
        assert r.status_code == 503
        assert r.json()["failed"] == ["postgres"]
        # Postgres is never in the ingest path.
        r = httpx.post(procs.api_url + "/ingest/tick", json=tick(1), auth=AUTH, timeout=5)
        assert r.status_code == 200
