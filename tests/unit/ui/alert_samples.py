"""Alert firings, history events and rules as the API and the bus carry them, for the UI's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backend.core.alerts.firing import Firing
from backend.core.alerts.history import AlertEvent
from backend.core.alerts.rules import AlertRuleOut
from backend.core.events import AlertFired, encode_event

FIRED_AT = "2026-12-04T10:00:00.000000+00:00"


def make_firing(**overrides: Any) -> Firing:
    data: dict[str, Any] = {
        "alert_id": "a-1",
        "rule_id": "r-1",
        "rule_name": "BTC breakout",
        "symbol": "BTCUSDT",
        "field": "last_price",
        "condition": "crosses_above",
        "value": 65_000.0,
        "observed": 65_012.0,
        "tick": {"ts": FIRED_AT, "event_id": "e-1", "price": 65_012.0},
        "firing_key": "e-1",
        "fired_at": FIRED_AT,
    }
    return Firing.model_validate(data | overrides)


def fired_event(**overrides: Any) -> bytes:
    return encode_event(AlertFired(firing=make_firing(**overrides)))


def make_event(deliveries: list[dict[str, Any]] | None = None, **overrides: Any) -> AlertEvent:
    firing = make_firing(**overrides).model_dump(mode="json")
    if deliveries is None:
        deliveries = [
            {"channel": "ui", "status": "delivered", "attempts": 1, "updated_at": FIRED_AT}
        ]
    return AlertEvent.model_validate(firing | {"committed_at": FIRED_AT, "deliveries": deliveries})


def rule_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "r-1",
        "version": 1,
        "name": "BTC breakout",
        "symbol": "BTCUSDT",
        "field": "last_price",
        "condition": "crosses_above",
        "value": 65_000.0,
        "value2": None,
        "trigger": "once_per_bar",
        "bar": "1m",
        "cooldown_s": 0,
        "expires_at": None,
        "enabled": True,
        "channels": [{"type": "ui"}],
        "created_at": FIRED_AT,
        "updated_at": FIRED_AT,
    }
    return data | overrides


def make_rule(**overrides: Any) -> AlertRuleOut:
    return AlertRuleOut.model_validate(rule_json(**overrides))


NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def live_entry(seq: int, alert_id: str, **firing: Any) -> dict[str, Any]:
    """One alert as the live feed holds it."""
    data = make_firing(alert_id=alert_id, **firing).model_dump(mode="json")
    return {"seq": seq, "received_at": NOW.isoformat(), "firing": data}
