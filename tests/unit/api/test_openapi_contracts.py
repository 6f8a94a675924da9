"""/docs shows the contracts: each read route's 200 answer is the core model it returns.

Built from `create_app(Settings())` without starting it: nothing connects until the lifespan
runs, so this needs no servers.
"""

from __future__ import annotations

from typing import Any

import pytest

from backend.api.app import create_app
from backend.settings import Settings

EXPECTED = {
    "/symbols": "SymbolsResponse",
    "/symbols/{symbol}": "View",
    "/tickets/{symbol}": "View",
    "/symbols/{symbol}/gaps": "GapsResponse",
    "/symbols/{symbol}/candles": "CandlesResponse",
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(Settings()).openapi()


@pytest.mark.parametrize(("path", "model"), sorted(EXPECTED.items()))
def test_route_answers_with_its_model(openapi: dict[str, Any], path: str, model: str) -> None:
    answer = openapi["paths"][path]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{model}"
    }


def test_the_models_are_spelled_out_field_by_field(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    view = schemas["View"]["properties"]
    assert {"last_price", "last_10", "vwap_1m", "stale", "updated_at"} <= set(view)
    assert view["last_10"]["items"] == {"$ref": "#/components/schemas/LastTick"}
    assert view["last_ts"]["format"] == "date-time"
    assert {"anyOf": [{"type": "number"}, {"type": "null"}]}.items() <= view["vwap_1m"].items()
    candles = schemas["CandlesResponse"]["properties"]
    assert {"from", "to", "candles", "live"} <= set(candles)
    assert candles["candles"]["items"] == {"$ref": "#/components/schemas/CandleBar"}
    gaps = schemas["GapsResponse"]["properties"]
    assert gaps["open"]["items"] == {"$ref": "#/components/schemas/GapRecord"}
    entry = schemas["SymbolEntry"]["properties"]["view"]
    assert {"$ref": "#/components/schemas/View"} in entry["anyOf"]


ALERT_ANSWERS = {
    ("post", "/alerts/rules", "201"): "AlertRuleOut",
    ("get", "/alerts/rules", "200"): "AlertRulesResponse",
    ("get", "/alerts/rules/{rule_id}", "200"): "AlertRuleOut",
    ("patch", "/alerts/rules/{rule_id}", "200"): "AlertRuleOut",
    ("post", "/alerts/rules/{rule_id}/test", "202"): "TestFireResponse",
    ("get", "/alerts/events", "200"): "AlertEventsResponse",
}


@pytest.mark.parametrize(("route", "model"), sorted(ALERT_ANSWERS.items()))
def test_alert_routes_answer_with_their_model(
    openapi: dict[str, Any], route: tuple[str, str, str], model: str
) -> None:
    method, path, status = route
    answer = openapi["paths"][path][method]["responses"][status]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{model}"
    }


def test_alert_rule_bodies_are_documented_without_dangling_refs(openapi: dict[str, Any]) -> None:
    for method, path in (("post", "/alerts/rules"), ("patch", "/alerts/rules/{rule_id}")):
        body = openapi["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert {"symbol", "field", "condition", "channels"} <= set(body["schema"]["properties"])
    assert "#/$defs/" not in str(openapi)  # a ref into a model's own $defs points at nothing
