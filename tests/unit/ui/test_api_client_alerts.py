"""BackendClient's alert calls: typed answers, secrets sent in clear, 422 field errors kept."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from backend.core.alerts.rules import AlertRuleSpec
from tests.unit.ui.alert_samples import make_event, make_rule, rule_json
from ui.api_client import BackendClient, BackendError, BackendRejected

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler) -> BackendClient:
    return BackendClient("http://backend.test/", "k", transport=httpx.MockTransport(handler))


def test_create_posts_the_spec_with_the_webhook_secret_in_clear() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=rule_json())

    spec = AlertRuleSpec.model_validate(
        {
            "name": "BTC breakout",
            "symbol": "BTCUSDT",
            "field": "last_price",
            "condition": "crosses_above",
            "value": 65_000,
            "channels": [
                {"type": "ui"},
                {"type": "webhook", "url": "https://example.org/h", "secret": "s" * 20},
            ],
        }
    )
    assert client_for(handler).create_alert_rule(spec) == make_rule()
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/alerts/rules")
    body = json.loads(request.content)
    assert body["channels"][1] == {
        "type": "webhook",
        "url": "https://example.org/h",
        "secret": "s" * 20,
    }
    assert "expires_at" not in body and "value2" not in body
    assert request.headers["x-api-key"] == "k"


def test_a_422_keeps_each_field_and_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422,
            json={
                "error": "invalid_rule",
                "message": "rule is invalid",
                "detail": [{"field": "channels.1.url", "reason": "host is on the deny list"}],
            },
        )

    spec = AlertRuleSpec.model_validate(
        {"name": "n", "symbol": "A", "field": "last_price", "condition": "above", "value": 1}
    )
    with pytest.raises(BackendRejected) as caught:
        client_for(handler).create_alert_rule(spec)
    assert caught.value.fields == [
        {"field": "channels.1.url", "reason": "host is on the deny list"}
    ]
    assert "deny list" in caught.value.message


def test_a_422_in_the_errors_shape_is_read_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": "invalid", "errors": [{"field": "value", "reason": "field required"}]}
        return httpx.Response(422, json=body)

    with pytest.raises(BackendRejected) as caught:
        client_for(handler).update_alert_rule("r-1", {"value": None})
    assert caught.value.fields == [{"field": "value", "reason": "field required"}]


def test_list_get_patch_test_and_events() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/alerts/rules":
            return httpx.Response(200, json={"rules": [rule_json()]})
        if path == "/alerts/rules/r-1" and request.method == "GET":
            return httpx.Response(200, json=rule_json())
        if path == "/alerts/rules/r-1" and request.method == "PATCH":
            return httpx.Response(200, json=rule_json(enabled=False, version=2))
        if path == "/alerts/rules/r-1/test":
            return httpx.Response(202, json={"alert_id": "t-1"})
        if path == "/alerts/events":
            event = make_event().model_dump(mode="json")
            return httpx.Response(200, json={"events": [event]})
        return httpx.Response(404, json={"error": "not_found", "message": "no such rule"})

    client = client_for(handler)
    assert client.list_alert_rules(symbol="BTCUSDT") == [make_rule()]
    assert seen[-1].url.params["symbol"] == "BTCUSDT"
    assert client.get_alert_rule("r-1") == make_rule()
    assert client.get_alert_rule("nope") is None
    paused = client.update_alert_rule("r-1", {"enabled": False})
    assert (paused.enabled, paused.version) == (False, 2)
    assert json.loads(seen[-1].content) == {"enabled": False}
    assert client.test_alert_rule("r-1").alert_id == "t-1"
    events = client.list_alert_events(symbol="BTCUSDT", limit=50)
    assert events.events == [make_event()]
    assert dict(seen[-1].url.params) == {"symbol": "BTCUSDT", "limit": "50"}


def test_delete_is_true_then_false_once_gone() -> None:
    gone: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "DELETE"
        if request.url.path in gone:
            return httpx.Response(404, json={"error": "not_found", "message": "no such rule"})
        gone.add(request.url.path)
        return httpx.Response(204)

    client = client_for(handler)
    assert client.delete_alert_rule("r-1") is True
    assert client.delete_alert_rule("r-1") is False


def test_patch_of_a_missing_rule_is_a_backend_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "not_found", "message": "no such rule"})

    with pytest.raises(BackendError, match="no such rule"):
        client_for(handler).update_alert_rule("r-1", {"enabled": True})


def test_history_outside_the_contract_names_the_field() -> None:
    bad = make_event().model_dump(mode="json")
    del bad["deliveries"]
    with pytest.raises(BackendError, match="deliveries"):
        client_for(lambda r: httpx.Response(200, json={"events": [bad]})).list_alert_events()
