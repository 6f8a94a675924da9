"""The realtime gateway's app: `create_app(settings)`; the hub opened and closed by `lifespan`.

Routes: GET /stream (SSE), GET /ws (WebSocket), GET /clients (each client's counters), and the
ops endpoints every process has (/health/liveness, /health/readiness, /metrics).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from backend.bus.keys import Keys
from backend.bus.realtime import Ring, RingReader
from backend.gateway import access
from backend.gateway.client import Client, Transport
from backend.gateway.hub import Hub
from backend.gateway.metrics import GatewayMetrics
from backend.gateway.requests import Wanted, parse_wanted
from backend.gateway.sse import SseResponse, client_address
from backend.gateway.ws import WsSession
from backend.logs import configure_logging
from backend.ops.access import MetricsAccess
from backend.settings import GatewaySettings, get_gateway_settings

log = logging.getLogger(__name__)

# How long startup waits for the hub's first read of the ring before listening anyway.
STARTUP_WAIT_S = 10.0

DESCRIPTION = """
Tickstream's realtime gateway: every bus event, with its ring id, over Server-Sent Events
(`/stream`) or a WebSocket (`/ws`). A client starts from a snapshot of the views it follows, or
resumes after its last id (`Last-Event-ID`); see docs/services/gateway.md.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_gateway_settings()
    metrics = GatewayMetrics()
    metrics_access = MetricsAccess.from_settings(settings)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The hub blocks in XREAD for up to 5 s: a socket silent for longer than that is a dead
        # connection (a cut network never says so), which the hub then reopens.
        redis = Redis.from_url(
            settings.effective_redis_url,
            health_check_interval=30,
            socket_timeout=15,
            socket_connect_timeout=3,
            socket_keepalive=True,
        )
        reader = RingReader(redis, Ring.from_settings(settings), Keys.from_settings(settings))
        hub = Hub(reader, metrics, retention_s=settings.realtime_retention)
        await hub.start()
        # Listen only once the hub can start clients: a browser's EventSource takes any answer
        # but 200 (our 503 while not ready) as final and never reconnects, so a restarting
        # gateway must refuse the connection (the browser retries) rather than answer it. With
        # Redis down for longer, serve anyway: probes report it, /stream answers 503.
        if not await hub.wait_ready(STARTUP_WAIT_S):
            log.warning("gateway: the ring is not readable (%s); serving anyway", hub.last_error)
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.stop()
            await redis.aclose()

    configure_logging(settings, service="gateway")
    app = FastAPI(
        title="Tickstream realtime gateway", version="0.1.0", description=DESCRIPTION,
        lifespan=lifespan,
    )  # fmt: skip
    if settings.gateway_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway_cors_origins,
            allow_methods=["GET"],
            allow_headers=["x-api-key", "authorization", "last-event-id"],
        )

    def admit(
        request_headers: dict[str, str], query: dict[str, str], hub: Hub
    ) -> JSONResponse | Wanted:
        """Auth, readiness, limit and the request's own fields, in that order."""
        if not access.key_allowed(access.presented_key(request_headers, query), api_key):
            metrics.refused.labels("auth").inc()
            return access.unauthorized()
        if not hub.ready:
            metrics.refused.labels("not_ready").inc()
            return access.not_ready(hub.last_error or "starting")
        if len(hub.clients) >= settings.gateway_max_clients:
            metrics.refused.labels("limit").inc()
            return access.full(settings.gateway_max_clients)
        return parse_wanted(query, request_headers.get("last-event-id"))

    def new_client(transport: Transport, remote: str, wanted: Wanted) -> Callable[[int], Client]:
        def build(number: int) -> Client:
            return Client(
                number, transport, remote, wanted.symbols, wanted.types,
                settings.gateway_client_queue,
            )  # fmt: skip

        return build

    @app.get(
        "/stream",
        summary="Server-Sent Events: a snapshot (or a resume), then every event, with ids",
        response_class=Response,
        tags=["realtime"],
    )
    async def stream(request: Request) -> Response:
        hub: Hub = request.app.state.hub
        answer = admit(dict(request.headers), dict(request.query_params), hub)
        if isinstance(answer, JSONResponse):
            if not hub.ready and "text/event-stream" in request.headers.get("accept", ""):
                # An EventSource takes a 503 as final and never reconnects: tell it to come
                # back instead (a 200 stream that ends at once; it retries with its last id).
                return access.come_back_later(settings.gateway_retry_ms, hub.last_error)
            return answer
        client = hub.register(new_client("sse", client_address(request), answer))
        return SseResponse(
            hub, client, answer,
            heartbeat_s=settings.gateway_heartbeat_s, retry_ms=settings.gateway_retry_ms,
        )  # fmt: skip

    @app.websocket("/ws")
    async def websocket(socket: WebSocket) -> None:
        hub: Hub = socket.app.state.hub
        headers = dict(socket.headers)
        origin = headers.get("origin")
        if not access.origin_allowed(origin, headers.get("host"), settings.gateway_cors_origins):
            metrics.refused.labels("origin").inc()
            await socket.send_denial_response(access.forbidden_origin(origin or ""))
            return
        answer = admit(headers, dict(socket.query_params), hub)
        if isinstance(answer, JSONResponse):
            await socket.send_denial_response(answer)
            return
        remote = f"{socket.client.host}:{socket.client.port}" if socket.client else "?"
        client = hub.register(new_client("ws", remote, answer))
        try:
            await socket.accept()
            await WsSession(hub, client, socket, settings.gateway_heartbeat_s).run(answer)
        finally:
            hub.unregister(client)

    @app.get("/clients", summary="Every connected client and its counters", tags=["ops"])
    async def clients(request: Request) -> JSONResponse:
        query = dict(request.query_params)
        if not access.key_allowed(access.presented_key(dict(request.headers), query), api_key):
            return access.unauthorized()
        hub: Hub = request.app.state.hub
        return JSONResponse([client.info() for client in list(hub.clients.values())])

    @app.get("/health/liveness", tags=["ops"])
    async def liveness() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/readiness", tags=["ops"])
    async def readiness(request: Request) -> JSONResponse:
        hub: Hub = request.app.state.hub
        body = {
            "status": "ready" if hub.ready else "unavailable",
            "ring": "connected" if hub.connected else (hub.last_error or "starting"),
            "position": f"{hub.position[0]}-{hub.position[1]}" if hub.position else None,
            "clients": len(hub.clients),
            "max_clients": settings.gateway_max_clients,
        }
        headers = None if hub.ready else {"Retry-After": str(access.RETRY_AFTER_S)}
        return JSONResponse(body, status_code=200 if hub.ready else 503, headers=headers)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus(request: Request) -> Response:
        refusal = metrics_access.refusal(request)
        if refusal is not None:
            return refusal
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
