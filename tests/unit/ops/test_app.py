"""The ops app every non-API process serves: probes answer, /metrics applies the access rule."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from backend.ops.access import MetricsAccess
from backend.ops.app import build_ops_app

LOCAL = ("127.0.0.1", 50000)
OUTSIDE = ("203.0.113.9", 50000)  # TEST-NET-3: never in the default allow list


async def fine() -> dict[str, Any]:
    return {"detail": 1}


async def broken() -> None:
    raise ConnectionError("redis is gone")


def app(checks: dict[str, Any], api_key: str | None = "k3y", info: dict[str, Any] | None = None):
    access = MetricsAccess(api_key=api_key, allow_cidrs=("127.0.0.0/8",))
    return build_ops_app(
        service="worker",
        checks=checks,
        render_metrics=lambda: b"up 1\n",
        access=access,
        info_checks=info,
    )


def test_readiness_reports_each_check():
    with TestClient(app({"redis": fine}), client=LOCAL) as client:
        assert client.get("/health/liveness").json()["status"] == "ok"
        ready = client.get("/health/readiness")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["checks"]["redis"]["detail"] == 1


def test_a_failed_check_is_not_ready_and_named():
    with TestClient(app({"redis": broken, "other": fine}), client=LOCAL) as client:
        r = client.get("/health/readiness")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError: redis is gone"}
        assert body["checks"]["other"]["ok"] is True


def test_a_failed_informational_check_is_degraded_yet_ready():
    with TestClient(app({"redis": fine}, info={"postgres": broken}), client=LOCAL) as client:
        r = client.get("/health/readiness")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ready" and body["degraded"] == ["postgres"]
        assert body["checks"]["postgres"]["ok"] is False
        assert body["checks"]["redis"]["ok"] is True


def test_a_gating_check_still_decides_beside_a_healthy_informational_one():
    with TestClient(app({"redis": broken}, info={"postgres": fine}), client=LOCAL) as client:
        r = client.get("/health/readiness")
        assert r.status_code == 503
        assert r.json()["degraded"] == [] and r.json()["checks"]["postgres"]["ok"] is True


def test_a_check_cannot_be_both_gating_and_informational():
    with pytest.raises(ValueError, match="postgres"):
        app({"postgres": fine}, info={"postgres": fine})


def test_metrics_from_an_allowed_address():
    with TestClient(app({}), client=LOCAL) as client:
        r = client.get("/metrics")
        assert r.status_code == 200 and r.text == "up 1\n"


def test_metrics_from_outside_need_the_key():
    with TestClient(app({}), client=OUTSIDE) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["detail"][0]["field"] == "x-api-key"
        assert client.get("/metrics", headers={"x-api-key": "k3y"}).status_code == 200
        assert client.get("/metrics", headers={"authorization": "Bearer k3y"}).status_code == 200


def test_metrics_from_outside_without_a_configured_key_are_forbidden():
    with TestClient(app({}, api_key=None), client=OUTSIDE) as client:
        r = client.get("/metrics")
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert client.get("/health/liveness").status_code == 200  # probes stay open
