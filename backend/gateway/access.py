"""Who may connect: the API key (header, Bearer, or `key` query for EventSource), the origin of a
browser page, and the connection limit. Answers in the API's error shape."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.responses import JSONResponse, Response

RETRY_AFTER_S = 5


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """`x-api-key`, else `Authorization: Bearer`, else the `key` query parameter.

    The query form exists because a browser's EventSource cannot set headers; a key in a URL can
    end up in proxy and server logs, so a page should use a read-only key (see the gateway doc).
    """
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return query.get("key") or None


def key_allowed(presented: str | None, expected: str | None) -> bool:
    if expected is None:
        return True
    return presented is not None and secrets.compare_digest(presented.encode(), expected.encode())


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A page may open a WebSocket from its own origin or a configured one (browsers send
    `Origin`; other clients usually don't, and are let through: the key is what protects)."""
    if not origin:
        return True
    if "*" in allowed or origin in allowed:
        return True
    return bool(host) and urlsplit(origin).netloc == host


def error(
    status: int, code: str, message: str, field: str, reason: str, **headers: str
) -> JSONResponse:
    body = {"error": code, "message": message, "detail": [{"field": field, "reason": reason}]}
    return JSONResponse(body, status_code=status, headers=headers or None)


def unauthorized() -> JSONResponse:
    return error(
        401, "unauthorized", "API key required (x-api-key header, Bearer token or key=)",
        "x-api-key", "missing or wrong API key",
    )  # fmt: skip


def full(limit: int) -> JSONResponse:
    return error(
        503, "unavailable", f"this gateway holds its maximum of {limit} clients",
        "connection", "GATEWAY_MAX_CLIENTS reached; retry, or another replica",
        **{"Retry-After": str(RETRY_AFTER_S)},
    )  # fmt: skip


def not_ready(reason: str) -> JSONResponse:
    return error(
        503, "unavailable", "the gateway is not connected to the realtime ring",
        "redis", reason, **{"Retry-After": str(RETRY_AFTER_S)},
    )  # fmt: skip


def forbidden_origin(origin: str) -> JSONResponse:
    return error(
        403, "forbidden", f"origin {origin} is not allowed", "origin",
        "not in GATEWAY_CORS_ORIGINS",
    )  # fmt: skip


def come_back_later(retry_ms: int, reason: str | None) -> Response:
    """For an EventSource while the ring is unreadable: an empty stream with a `retry:` hint.

    Browsers end an EventSource for good on any status but 200, so a 503 would strand the page;
    a stream that ends is retried after `retry` ms with the same Last-Event-ID.
    """
    comment = (reason or "starting").replace("\n", " ")[:200]
    body = f"retry: {retry_ms}\n: not ready: {comment}\n\n"
    return Response(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "Retry-After": str(RETRY_AFTER_S)},
    )
