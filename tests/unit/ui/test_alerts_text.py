"""The alert UI's wording (`ui.alerts_text`): numbers, summaries, toasts."""

from __future__ import annotations

import pytest

from tests.unit.ui.alert_samples import make_firing
from ui.alerts_text import (
    format_number,
    rule_summary,
    toast_text,
    trigger_summary,
)


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
