"""The Replay form → `ReplayRequest`, validated by the shared model, errors named by field."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time

import pytest

from backend.core.replay import ReplayRequest
from ui.api_client import replay_json
from ui.replay_form import (
    SPEED_HINT,
    InlineRule,
    ReplayForm,
    build_request,
    error_lines,
    parse_speed,
)

BASE = ReplayForm(
    symbols=["aaa", "BBB", "AAA"],
    from_date=date(2026, 1, 1),
    from_time=time(9, 30),
    to_date=date(2026, 1, 2),
    to_time=None,
)


def fields(result: object) -> list[str]:
    assert isinstance(result, list), result
    return [e["field"] for e in result]


def test_a_plain_replay_is_the_shared_model_with_utc_bounds() -> None:
    request = build_request(BASE)
    assert isinstance(request, ReplayRequest)
    assert request.symbols == ["AAA", "BBB"]  # upper-cased, de-duplicated, sorted
    assert request.from_ == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    assert request.to == datetime(2026, 1, 2, tzinfo=UTC)  # a blank time is midnight
    assert (request.speed, request.alerts, request.rules, request.rule_ids) == (
        "max",
        "off",
        [],
        [],
    )
    # What the client POSTs: `from` by its alias, and the API's own model reads it back.
    body = replay_json(request)
    assert body["from"] == "2026-01-01T09:30:00Z" and "from_" not in body
    assert ReplayRequest.model_validate(body) == request


@pytest.mark.parametrize(
    ("text", "speed"),
    [("max", "max"), (" MAX ", "max"), ("1", 1.0), ("10x", 10.0), ("2.5×", 2.5), ("1000", 1000.0),
     ("0", None), ("1001", None), ("fast", None), ("", None), ("nan", None), ("inf", None)],
)  # fmt: skip
def test_speed_is_max_or_a_number_from_1_to_1000(text: str, speed: object) -> None:
    assert parse_speed(text) == speed


def test_a_bad_speed_is_named_once_in_words() -> None:
    assert build_request(replace(BASE, speed="0")) == [{"field": "speed", "reason": SPEED_HINT}]
    request = build_request(replace(BASE, speed="25"))
    assert isinstance(request, ReplayRequest) and request.speed == 25.0


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (replace(BASE, symbols=[]), "symbols"),
        (replace(BASE, symbols=["bad symbol"]), "symbols"),
        (replace(BASE, to_date=date(2025, 12, 31)), "to"),
        (replace(BASE, from_date=None), "from"),
        (replace(BASE, alerts="sandbox"), "alerts"),  # a sandbox with nothing to backtest
        (replace(BASE, alerts="sandbox", inline=InlineRule("AAA")), "rules.0.value"),
        (replace(BASE, alerts="sandbox", inline=InlineRule("CCC", value=1)), "rules"),
    ],
)
def test_what_the_model_refuses_is_named_by_the_field_the_api_would_name(
    form: ReplayForm, field: str
) -> None:
    result = build_request(form)
    assert fields(result) == [field], result
    assert all(": " in line for line in error_lines(result))  # type: ignore[arg-type]


def test_rules_go_only_with_a_sandbox() -> None:
    inline = InlineRule("", value=100.0, trigger="every_time")
    off = build_request(replace(BASE, rule_ids=["r-1"], inline=inline))
    assert isinstance(off, ReplayRequest) and (off.rule_ids, off.rules) == ([], [])
    sandbox = build_request(replace(BASE, alerts="sandbox", rule_ids=["r-1"], inline=inline))
    assert isinstance(sandbox, ReplayRequest)
    assert sandbox.rule_ids == ["r-1"]
    [rule] = sandbox.rules
    # A blank rule symbol is the first symbol replayed; the name says what it watches.
    assert (rule.symbol, rule.field, rule.condition, rule.value) == (
        "AAA", "last_price", "crosses_above", 100.0,
    )  # fmt: skip
    assert rule.name == "AAA last_price crosses above 100" and rule.trigger == "every_time"
    # Inline rules are sent without channels: a sandbox never delivers.
    assert "channels" not in replay_json(sandbox)["rules"][0]


def test_a_channel_rule_takes_its_high_edge() -> None:
    inline = InlineRule("bbb", condition="enters_channel", value=99.0, value2=101.0)
    request = build_request(replace(BASE, alerts="sandbox", inline=inline))
    assert isinstance(request, ReplayRequest)
    assert (request.rules[0].symbol, request.rules[0].value2) == ("BBB", 101.0)
    low_high = replace(inline, value2=98.0)
    assert fields(build_request(replace(BASE, alerts="sandbox", inline=low_high))) == [
        "rules.0.value2"
    ]
