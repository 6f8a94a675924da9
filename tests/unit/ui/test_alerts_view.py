"""The alert UI's pure logic: toast text, which firings are new or unread, the form as a spec,
where each error shows, edit patches and history rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from backend.core.alerts.rules import AlertRuleSpec, UiChannel, WebhookChannel
from tests.unit.ui.alert_samples import make_event, make_firing, make_rule
from ui.alerts_marks import (
    AlertMarks,
    mark_read,
    rebase,
    start_marks,
    to_toast,
    unread_count,
)
from ui.alerts_text import (
    format_number,
    rule_summary,
    toast_text,
    trigger_summary,
)
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

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def entry(seq: int, alert_id: str, **firing: Any) -> dict[str, Any]:
    """One alert as the live feed holds it."""
    data = make_firing(alert_id=alert_id, **firing).model_dump(mode="json")
    return {"seq": seq, "received_at": NOW.isoformat(), "firing": data}


# --- text -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (65_000.0, "65,000"),
        (65_012.5, "65,012.5"),
        (1.08345, "1.08345"),
        (0.00012345, "0.00012345"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (None, "—"),
    ],
)
def test_format_number(value: float | None, text: str) -> None:
    assert format_number(value) == text


def test_toast_text_says_who_what_and_the_threshold() -> None:
    assert toast_text(make_firing()) == (
        "BTC breakout: BTCUSDT last_price 65,012 crossed above 65,000"
    )
    # The bus's JSON form works too (the live feed holds dicts).
    assert toast_text(make_firing().model_dump(mode="json")).startswith("BTC breakout: ")


def test_toast_text_of_channels_flags_and_test_firings() -> None:
    channel = make_firing(condition="enters_channel", value=1.0, value2=2.0, observed=1.5)
    assert toast_text(channel).endswith("BTCUSDT last_price 1.5 entered 1–2")
    stale = make_firing(field="stale", condition="above", value=None, observed=1.0)
    assert toast_text(stale) == "BTC breakout: BTCUSDT went stale"
    gap = make_firing(field="gap_opened", condition="crosses_above", value=None, observed=1.0)
    assert toast_text(gap) == "BTC breakout: a sequence gap opened on BTCUSDT"
    assert toast_text(make_firing(test=True)).startswith("Test · BTC breakout: ")


def test_rule_and_trigger_summaries() -> None:
    assert rule_summary("last_price", "below", 10.0, None) == "last_price is below 10"
    assert rule_summary("vwap_1m", "exits_channel", 1.0, 2.0) == "vwap_1m exits channel 1–2"
    assert rule_summary("stale", "above", None, None) == "stale becomes true"
    assert trigger_summary("once_per_bar", "5m", 0) == "once per 5m bar"
    assert trigger_summary("every_time", "1m", 60) == "every time (cooldown 60 s)"
    assert trigger_summary("every_time", "1m", 0) == "every time"
    assert trigger_summary("once", "1m", 60) == "once"


# --- toasts and unread ------------------------------------------------------------------------
def test_toasts_only_what_arrived_after_the_session_started_once_each_oldest_first() -> None:
    marks = start_marks(alerts_received=2)
    alerts = [entry(4, "c"), entry(3, "b"), entry(2, "a")]  # newest first, as the feed gives
    shown, marks = to_toast(alerts, marks)
    assert [f["alert_id"] for f in shown] == ["b", "c"]
    again, marks = to_toast(alerts, marks)
    assert again == []
    # The same alert arriving twice (a re-published event) is toasted once.
    shown, marks = to_toast([entry(6, "d"), entry(5, "c"), *alerts], marks)
    assert [f["alert_id"] for f in shown] == ["d"]
    assert marks.toasted == ("b", "c", "d")


def test_the_toasted_memory_is_bounded() -> None:
    marks = AlertMarks(baseline=0, read_upto=0, toasted=tuple(str(i) for i in range(1_000)))
    _, marks = to_toast([entry(1, "new")], marks)
    assert len(marks.toasted) == 1_000
    assert marks.toasted[-1] == "new" and "0" not in marks.toasted


def test_unread_counts_distinct_firings_since_the_last_look() -> None:
    alerts = [entry(5, "e"), entry(4, "d"), entry(3, "d"), entry(2, "b")]
    assert unread_count(alerts, alerts_received=5, read_upto=2) == 2  # d once, e
    assert unread_count(alerts, alerts_received=5, read_upto=5) == 0
    marks = mark_read(start_marks(0), 5)
    assert unread_count(alerts, 5, marks.read_upto) == 0


def test_unread_counts_firings_the_feed_no_longer_holds() -> None:
    # The feed holds seq 101..103 only; the session last looked at seq 10.
    alerts = [entry(103, "z"), entry(102, "y"), entry(101, "x")]
    assert unread_count(alerts, alerts_received=103, read_upto=10) == 3 + 90
    assert unread_count([], alerts_received=7, read_upto=4) == 3


def test_a_restarted_feed_rebases_the_marks() -> None:
    marks = AlertMarks(baseline=50, read_upto=60, toasted=("a",))
    assert rebase(marks, 70) is marks
    assert rebase(marks, 3) == AlertMarks(3, 3, ("a",))


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
    live = [entry(3, "new", rule_id="r-9"), entry(2, "old")]
    rows = history_rows(history, live)
    assert [(r["alert_id"], r["status"]) for r in rows] == [
        ("new", "delivered"),
        ("new", "recording"),
        ("old", "delivered"),
    ]
    # The page's filters apply to the live firings too.
    assert [r["alert_id"] for r in history_rows(history, live, rule_id="r-1")] == ["old"]
    assert [r["alert_id"] for r in history_rows(history, live, symbol="ETHUSDT")] == ["old"]
