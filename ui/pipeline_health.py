"""The Pipeline page's health badges, from the API's readiness answer (pure: no Streamlit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ui.stats_samples import to_number


@dataclass(frozen=True, slots=True)
class HealthPart:
    """One part of the pipeline as a badge: `ok` None means not known (the API did not answer)."""

    name: str
    ok: bool | None
    status: str
    detail: str = ""


def _latency(check: Mapping[str, Any]) -> str:
    latency = to_number(check.get("latency_ms"))
    return f"{latency:.1f} ms" if latency is not None else ""


def health_parts(
    readiness: Mapping[str, Any] | None,
    api_error: str | None = None,
    api_latency_ms: float | None = None,
) -> list[HealthPart]:
    """API, Redis, Postgres and workers as badges, from `GET /health/readiness`.

    The API is up when it answered at all (a 503 naming what failed is an answer). Without an
    answer nothing is known about the other parts, which is said rather than shown as down.
    """
    if readiness is None:
        reason = api_error or "No answer from the backend."
        unknown = "unknown: the API did not answer"
        return [
            HealthPart("API", False, "down", reason),
            HealthPart("Redis", None, "unknown", unknown),
            HealthPart("Postgres", None, "unknown", unknown),
            HealthPart("Workers", None, "unknown", unknown),
        ]
    checks = readiness.get("checks")
    checks = checks if isinstance(checks, Mapping) else {}
    api_detail = f"{api_latency_ms:.0f} ms round trip" if api_latency_ms is not None else ""
    parts = [HealthPart("API", True, "ok", api_detail)]
    for name, key in (("Redis", "redis"), ("Postgres", "postgres")):
        check = checks.get(key)
        if not isinstance(check, Mapping):
            parts.append(HealthPart(name, None, "unknown", "not reported by the backend"))
        elif check.get("ok"):
            parts.append(HealthPart(name, True, "ok", _latency(check)))
        else:
            parts.append(HealthPart(name, False, "down", str(check.get("error") or "failed")))
    broker = checks.get("broker")
    if not isinstance(broker, Mapping):
        parts.append(HealthPart("Workers", None, "unknown", "not reported by the backend"))
    elif not broker.get("ok"):
        parts.append(HealthPart("Workers", False, "down", str(broker.get("error") or "failed")))
    else:
        workers = int(to_number(broker.get("workers")) or 0)
        depth = to_number(broker.get("queue_depth"))
        detail = f"queue depth {depth:,.0f}" if depth is not None else ""
        if workers >= 1:
            parts.append(HealthPart("Workers", True, f"{workers} live", detail))
        else:
            parts.append(
                HealthPart("Workers", False, "0 live", f"no live worker · {detail}".strip(" ·"))
            )
    return parts
