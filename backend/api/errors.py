"""Uniform JSON errors: every 4xx names the field (or header) and the reason; never a 500."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.core.validation import FieldError


class ApiError(Exception):
    """Raised anywhere in a request; rendered as `{"error", "message", "detail"}`."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        detail: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.detail = detail or []
        self.headers = headers


def error_body(
    error: str, message: str, detail: list[FieldError] | list[dict[str, Any]]
) -> dict[str, Any]:
    return {"error": error, "message": message, "detail": detail}


async def api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.error, exc.message, exc.detail), status_code=exc.status, headers=exc.headers
    )


async def request_validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "field": ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body")),
            "reason": err["msg"],
        }
        for err in exc.errors()
    ]
    return JSONResponse(
        error_body("validation_failed", "request is invalid", detail), status_code=422
    )


async def http_exception_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body("http_error", str(exc.detail), []),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def read_json_body(request: Request, max_bytes: int) -> Any:
    """The request body parsed strictly (orjson: bare NaN/Infinity and 1e400 are errors).

    Enforces the content type (415) and the size limit (413) before parsing, streaming the body
    so an oversized request is refused without being held in memory.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON",
            [{"field": "content-type", "reason": "must be application/json"}],
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            422,
            "invalid_json",
            "body is not valid JSON",
            [
                {
                    "field": "body",
                    "reason": f"invalid JSON ({exc}); NaN, Infinity and out-of-range "
                    "numbers are not allowed",
                }
            ],
        ) from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"body exceeds {max_bytes} bytes",
        [{"field": "body", "reason": f"larger than {max_bytes} bytes"}],
    )
