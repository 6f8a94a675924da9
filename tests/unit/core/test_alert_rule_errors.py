"""`rule_errors`: every bad field of a rule named once, cross-field checks split into their field,
nested channel fields named by position, and no input (a secret) echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.core.alerts.rules import AlertRuleSpec, rule_errors

BASE: dict[str, Any] = {
    "name": "n", "symbol": "BTCUSDT", "field": "last_price", "condition": "above", "value": 1.0,
}  # fmt: skip


def errors(**overrides: Any) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as caught:
        AlertRuleSpec.model_validate(BASE | overrides)
    return rule_errors(caught.value)


def test_cross_field_errors_name_their_field():
    assert errors(condition="enters_channel") == [
        {"field": "value2", "reason": "field required for enters_channel"}
    ]
    assert errors(value=None) == [{"field": "value", "reason": "field required"}]


def test_nested_channel_fields_are_named_by_position_without_the_union_tag():
    found = errors(channels=[{"type": "ui"}, {"type": "webhook", "url": "ftp://x"}])
    assert found == [{"field": "channels.1.url", "reason": "must be an http(s) URL"}]


def test_unknown_keys_and_types_read_plainly_and_secrets_are_not_echoed():
    secret = "tiny-secret"
    found = errors(
        colour="red",
        cooldown_s="soon",
        channels=[{"type": "webhook", "url": "https://h.example/x", "secret": secret}],
    )
    by_field = {e["field"]: e["reason"] for e in found}
    assert by_field["colour"] == "unknown field"
    assert by_field["cooldown_s"] == "must be an integer"
    assert by_field["channels.0.secret"] == "must be at least 16 characters"
    assert secret not in repr(found)
