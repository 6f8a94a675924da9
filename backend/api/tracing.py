"""Every HTTP request gets a trace id: the client's (W3C `traceparent`) or a new one.

A pure ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a queue per request, too
much on the ingest path). For the request it:
- keeps the trace id in `scope["state"]["trace"]` (routes read it through `deps.TraceDep`; ingest
  carries it with its ticks through the queue and the outbox);
- sets it in the log context, so every line written while the request runs, uvicorn's access
  line included, has `trace_id`;
- answers with `traceparent` (same trace id, this server's span id) and `X-Trace-Id` (for humans).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.trace import RequestTrace, request_trace
from backend.log_context import log_context


class TraceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                # Two traceparent headers are invalid: the comma makes the parse fail.
                header = value.decode("latin-1") if header is None else f"{header},"
        trace = request_trace(header)
        scope.setdefault("state", {})["trace"] = trace

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"traceparent", trace.traceparent.encode()),
                    (b"x-trace-id", trace.trace_id.encode()),
                ]
            await send(message)

        with log_context(trace_id=trace.trace_id):
            await self.app(scope, receive, send_with_trace)


def trace_of(scope: Scope) -> RequestTrace:
    """The request's trace (the middleware's; a new one if the app runs without it)."""
    state = scope.setdefault("state", {})
    trace = state.get("trace")
    if trace is None:
        trace = state["trace"] = request_trace(None)
    return trace
