"""The /metrics access rule (backend.core.metrics_access) applied to a Starlette request."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse

from backend.core.metrics_access import (
    AccessDecision,
    decide_metrics_access,
    parse_networks,
    presented_key,
)
from backend.settings.groups import ApiKeySettings, MetricsAccessSettings


@dataclass(frozen=True)
class MetricsAccess:
    api_key: str | None
    allow_cidrs: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: MetricsAccessSettings) -> MetricsAccess:
        """Built at startup: a bad METRICS_ALLOW_CIDRS fails the process here, not a scrape."""
        key = settings.api_key if isinstance(settings, ApiKeySettings) else None
        access = cls(
            api_key=key.get_secret_value() if key is not None else None,
            allow_cidrs=tuple(settings.metrics_allow_cidrs),
        )
        parse_networks(access.allow_cidrs)
        return access

    def decide(self, request: Request) -> AccessDecision:
        return decide_metrics_access(
            client_host=request.client.host if request.client else None,
            presented=presented_key(request.headers),
            api_key=self.api_key,
            allow_cidrs=self.allow_cidrs,
        )

    def refusal(self, request: Request) -> JSONResponse | None:
        """None when the client may read; else the 401/403 answer in the API's error shape."""
        decision = self.decide(request)
        if decision.allowed:
            return None
        # The API's error shape (backend.api.errors), spelled out: the feeder must not need it.
        body = {
            "error": "unauthorized" if decision.status == 401 else "forbidden",
            "message": decision.reason,
            "detail": [{"field": "x-api-key", "reason": decision.reason}],
        }
        return JSONResponse(body, status_code=decision.status)
