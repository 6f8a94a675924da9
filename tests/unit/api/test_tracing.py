"""The trace middleware: one trace id per request, in the log context and the response."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend.api.tracing import TraceMiddleware, trace_of
from backend.core.trace import parse_traceparent
from backend.log_context import current

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER = f"00-{TRACE}-00f067aa0ba902b7-01"


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"trace": trace_of(request.scope).trace_id, "context": current()})


def app(traced: bool = True) -> Starlette:
    app = Starlette(routes=[Route("/echo", echo)])
    if traced:
        app.add_middleware(TraceMiddleware)
    return app


def get(app: Starlette, headers: Any = None) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get("/echo", headers=headers)

    return asyncio.run(main())


def test_a_client_trace_id_is_kept_logged_and_echoed_with_a_new_span() -> None:
    response = get(app(), {"traceparent": HEADER})
    assert response.json() == {"trace": TRACE, "context": {"trace_id": TRACE}}
    echoed = parse_traceparent(response.headers["traceparent"])
    assert echoed is not None and echoed.trace_id == TRACE
    assert echoed.parent_id != "00f067aa0ba902b7"
    assert response.headers["x-trace-id"] == TRACE


def test_missing_invalid_or_repeated_headers_get_a_new_trace_id_never_an_error() -> None:
    traced = app()
    seen = set()
    for headers in ({}, {"traceparent": "00-nope-01"}, [("traceparent", HEADER)] * 2):
        response = get(traced, headers)
        assert response.status_code == 200
        trace_id = response.json()["trace"]
        assert trace_id != TRACE and len(trace_id) == 32
        assert response.headers["x-trace-id"] == trace_id == response.json()["context"]["trace_id"]
        seen.add(trace_id)
    assert len(seen) == 3


def test_without_the_middleware_a_route_still_gets_a_trace() -> None:
    body = get(app(traced=False)).json()
    assert len(body["trace"]) == 32 and body["context"] == {}
