"""The alert UI's forms and tables (`ui.alerts_view`): the form as a spec, where each error
shows, edit patches, rule state and history rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from backend.core.alerts.rules import AlertRuleSpec, UiChannel, WebhookChannel
from tests.unit.ui.alert_samples import NOW, live_entry, make_event, make_rule
from ui.alerts_view import (
    RuleForm,
    build_spec,
    edit_patch,
    errors_by_slot,
    form_slot,
    history_rows,
    rule_state,
    rules_fingerprint,
)


# --- the form ---------------------------------------------------------------------------------
def form(**overrides: Any) -> RuleForm:
    values: dict[str, Any] = {
        "symbol": "btcusdt ",
        "field": "last_price",
        "condition": "crosses_above",
        "value": 65_000.0,
        "name": "BTC breakout",
    }
    return RuleForm(**(values | overrides))


def test_a_valid_form_becomes_the_spec() -> None:
    spec = build_spec(
        form(
            value2=70_000.0,  # ignored: not a channel condition
            expires_on=date(2026, 12, 31),
            expires_time=time(12, 30),
            webhook_url="https://example.org/hook",
            webhook_secret="s" * 16,
            cooldown_s=60,
        ),
        NOW,
    )
    assert isinstance(spec, AlertRuleSpec)
    assert spec.symbol == "BTCUSDT"
    assert spec.value == 65_000.0 and spec.value2 is None
    assert spec.expires_at == datetime(2026, 12, 31, 12, 30, tzinfo=UTC)
    assert spec.channels[0] == UiChannel()
    webhook = spec.channels[1]
    assert isinstance(webhook, WebhookChannel)
    assert webhook.url == "https://example.org/hook"
    assert webhook.secret is not None and webhook.secret.get_secret_value() == "s" * 16


def test_a_blank_name_is_filled_from_what_the_rule_watches() -> None:
    spec = build_spec(form(name="  "), NOW)
    assert isinstance(spec, AlertRuleSpec)
    assert spec.name == "BTCUSDT last_price crosses above 65,000"


def test_a_channel_condition_keeps_value2_and_needs_it() -> None:
    spec = build_spec(form(condition="enters_channel", value=1.0, value2=2.0), NOW)
    assert isinstance(spec, AlertRuleSpec) and spec.value2 == 2.0
    errors = build_spec(form(condition="enters_channel", value=1.0), NOW)
    assert errors == [{"field": "value2", "reason": "field required for enters_channel"}]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"symbol": "bad symbol!"}, "symbol"),
        ({"value": None}, "value"),
        ({"in_app": False}, "channels"),
        ({"webhook_url": "ftp://example.org"}, "channels.1.webhook.url"),
        (
            {"webhook_url": "https://example.org", "webhook_secret": "short"},
            "channels.1.webhook.secret",
        ),
        ({"expires_on": date(2026, 12, 1)}, "expires_at"),
        ({"field": "stale", "condition": "below"}, "condition"),
    ],
)
def test_an_invalid_form_names_the_field(overrides: dict[str, Any], field: str) -> None:
    errors = build_spec(form(**overrides), NOW)
    assert isinstance(errors, list)
    assert [e["field"] for e in errors] == [field], errors


@pytest.mark.parametrize(
    ("field", "slot"),
    [
        ("value", "value"),
        ("value2", "value2"),
        ("expires_at", "expires_at"),
        ("channels", "channels"),
        ("channels.1.url", "webhook_url"),
        ("channels.1.webhook.url", "webhook_url"),
        ("channels.0.secret", "webhook_secret"),
        ("channels.0", "channels"),
        ("body", "form"),
        ("content-type", "form"),
        ("", "form"),
    ],
)
def test_each_field_error_goes_next_to_its_input(field: str, slot: str) -> None:
    assert form_slot(field) == slot


def test_errors_by_slot_keeps_every_reason_and_names_strays() -> None:
    slots = errors_by_slot(
        [
            {"field": "channels.1.url", "reason": "address 169.254.169.254 is in a denied block"},
            {"field": "value", "reason": "field required"},
            {"field": "value", "reason": "must be a finite number"},
            {"field": "body", "reason": "invalid JSON"},
        ]
    )
    assert slots == {
        "webhook_url": ["address 169.254.169.254 is in a denied block"],
        "value": ["field required", "must be a finite number"],
        "form": ["body: invalid JSON"],
    }


# --- edit, state, fingerprint -----------------------------------------------------------------
def test_edit_patch_sends_only_what_changed() -> None:
    rule = make_rule()
    unchanged = {"name": "BTC breakout", "value": 65_000, "trigger": "once_per_bar"}
    assert edit_patch(rule, unchanged) == {}
    changed = {"name": " New ", "value": 66_000, "value2": 1.0, "cooldown_s": 5.0}
    assert edit_patch(rule, changed) == {"name": "New", "value": 66_000.0, "cooldown_s": 5}
    assert edit_patch(rule, {"name": ""}) == {}  # a blank name keeps the old one
    channel = make_rule(condition="enters_channel", value=1.0, value2=2.0)
    assert edit_patch(channel, {"value2": 3}) == {"value2": 3.0}


def test_rule_state_and_fingerprint() -> None:
    assert rule_state(make_rule(), NOW) == "active"
    assert rule_state(make_rule(enabled=False), NOW) == "paused"
    assert rule_state(make_rule(expires_at="2026-12-04T09:00:00Z"), NOW) == "expired"
    assert rules_fingerprint([make_rule(), make_rule(id="r-2", version=3, enabled=False)]) == (
        ("r-1", 1, True),
        ("r-2", 3, False),
    )


# --- history ----------------------------------------------------------------------------------
def test_history_rows_one_per_delivery_with_status_attempts_and_error() -> None:
    event = make_event(
        deliveries=[
            {"channel": "ui", "status": "delivered", "attempts": 1, "updated_at": NOW.isoformat()},
            {
                "channel": "https://example.org/hook",
                "status": "dead",
                "attempts": 8,
                "last_error": "HTTP 500",
                "updated_at": NOW.isoformat(),
            },
        ]
    )
    rows = history_rows([event])
    assert [(r["channel"], r["status"], r["attempts"], r["last_error"]) for r in rows] == [
        ("in-app", "delivered", 1, ""),
        ("https://example.org/hook", "dead", 8, "HTTP 500"),
    ]
    assert rows[0]["what"] == "BTCUSDT last_price 65,012 crossed above 65,000"


def test_live_firings_not_yet_in_the_history_come_first() -> None:
    history = [make_event(alert_id="old")]
    live = [live_entry(3, "new", rule_id="r-9"), live_entry(2, "old")]
    rows = history_rows(history, live)
    assert [(r["alert_id"], r["status"]) for r in rows] == [
        ("new", "delivered"),
        ("new", "recording"),
        ("old", "delivered"),
    ]
    # The page's filters apply to the live firings too.
    assert [r["alert_id"] for r in history_rows(history, live, rule_id="r-1")] == ["old"]
    assert [r["alert_id"] for r in history_rows(history, live, symbol="ETHUSDT")] == ["old"]
