"""Who the gateway admits, through a real process: the API key (header, Bearer, `key=`), the
client limit (503 + Retry-After, then room again), and browser origins (CORS, WebSocket)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.gateway.streams import FAST, SseStream, clients, open_ws, receive, sse
from tests.support.processes import Processes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

KEY = "gateway-test-key"


def refusal(answer: httpx.Response | SseStream) -> tuple[int | None, str]:
    body = answer.content if isinstance(answer, httpx.Response) else answer.body
    status = answer.status_code if isinstance(answer, httpx.Response) else answer.status
    return status, orjson.loads(body)["detail"][0]["field"]


def test_with_an_api_key_every_connection_needs_it(procs: Processes) -> None:
    procs.start_gateway(extra_env={**FAST, "API_KEY": KEY})
    base = procs.gateway_url
    answer = httpx.get(base + "/stream", timeout=5)
    assert refusal(answer) == (401, "x-api-key")
    assert answer.headers["content-type"] == "application/json"
    assert refusal(httpx.get(base + "/stream", headers={"x-api-key": "wrong"}, timeout=5)) == (
        401,
        "x-api-key",
    )
    assert httpx.get(base + "/clients", timeout=5).status_code == 401

    for url, headers in (
        (base + "/stream", {"x-api-key": KEY}),
        (base + "/stream", {"authorization": f"Bearer {KEY}"}),
        (base + f"/stream?key={KEY}", {}),
    ):
        with sse(url, headers) as stream:
            assert stream.status == 200
            stream.wait_events("snapshot", 1)

    with pytest.raises(InvalidStatus) as refused:
        open_ws(base + "/ws")
    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body)["detail"][0]["field"] == "x-api-key"
    with open_ws(base + "/ws", additional_headers={"x-api-key": KEY}) as socket:
        assert receive(socket)["event"] == "hello"
    with open_ws(base + f"/ws?key={KEY}") as socket:
        assert receive(socket)["event"] == "hello"


def test_beyond_the_client_limit_a_503_with_retry_after_then_room_again(procs: Processes) -> None:
    procs.start_gateway(extra_env={**FAST, "GATEWAY_MAX_CLIENTS": "2"})
    base = procs.gateway_url
    first, second = SseStream(base + "/stream"), SseStream(base + "/stream")
    try:
        wait_for(lambda: len(clients(base)) == 2, 10, what="two clients")
        third = SseStream(base + "/stream")
        assert refusal(third) == (503, "connection")
        assert third.response_headers is not None
        assert third.response_headers["retry-after"] == "5"
        with pytest.raises(InvalidStatus) as refused:
            open_ws(base + "/ws")
        assert refused.value.response.status_code == 503

        first.close()
        wait_for(lambda: len(clients(base)) == 1, 10, what="the first client gone")
        with sse(base + "/stream") as again:
            assert again.status == 200
            again.wait_events("snapshot", 1)
        metrics = httpx.get(base + "/metrics", timeout=5).text
        assert 'tickstream_gateway_refused_total{reason="limit"} 2.0' in metrics
    finally:
        first.close()
        second.close()


def test_cors_origins_are_allowed_and_a_foreign_websocket_origin_refused(
    procs: Processes,
) -> None:
    app = "https://app.example"
    procs.start_gateway(extra_env={**FAST, "GATEWAY_CORS_ORIGINS": app})
    base = procs.gateway_url
    preflight = httpx.options(
        base + "/stream",
        headers={
            "Origin": app,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
        timeout=5,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == app
    assert "last-event-id" in preflight.headers["access-control-allow-headers"].lower()
    with sse(base + "/stream", {"Origin": app}) as stream:
        assert stream.response_headers is not None
        assert stream.response_headers["access-control-allow-origin"] == app
    with sse(base + "/stream", {"Origin": "https://evil.example"}) as foreign:
        assert foreign.response_headers is not None
        assert "access-control-allow-origin" not in foreign.response_headers

    with pytest.raises(InvalidStatus) as refused:
        open_ws(base + "/ws", origin="https://evil.example")
    assert refused.value.response.status_code == 403
    assert orjson.loads(refused.value.response.body)["detail"][0]["field"] == "origin"
    with open_ws(base + "/ws", origin=app) as socket:
        assert receive(socket)["event"] == "hello"
