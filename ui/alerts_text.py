"""How the alert UI words things: field and condition labels, numbers as people write them, a
rule's one-line summary and a firing's toast. Pure (no Streamlit), unit-tested."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.core.alerts.firing import Firing
from backend.core.alerts.rules import CHANNEL_CONDITIONS, FLAG_FIELDS, NUMERIC_FIELDS

FIELDS: tuple[str, ...] = (*NUMERIC_FIELDS, *FLAG_FIELDS)
CONDITIONS = (
    "crosses_above", "crosses_below", "crosses", "above", "below", "enters_channel",
    "exits_channel",
)  # fmt: skip
TRIGGERS = ("once_per_bar", "once", "every_time")
BARS = ("1m", "5m", "15m", "1h")

FIELD_LABELS = {
    "last_price": "Last price", "change_1m_pct": "Change 1m (%)", "vwap_1m": "VWAP 1m",
    "volume_1m": "Volume 1m", "trades_1m": "Trades 1m", "sma_10": "SMA-10",
    "high_1m": "High 1m", "low_1m": "Low 1m", "gaps_open": "Open gaps",
    "stale": "Stale (flag)", "gap_opened": "Gap opened (flag)",
}  # fmt: skip
CONDITION_LABELS = {
    "crosses_above": "crosses above", "crosses_below": "crosses below", "crosses": "crosses",
    "above": "is above", "below": "is below", "enters_channel": "enters channel",
    "exits_channel": "exits channel",
}  # fmt: skip
_PAST = {
    "crosses_above": "crossed above", "crosses_below": "crossed below", "crosses": "crossed",
    "above": "is above", "below": "is below", "enters_channel": "entered",
    "exits_channel": "left",
}  # fmt: skip
TRIGGER_LABELS = {
    "once_per_bar": "once per bar",
    "once": "once (then the rule pauses)",
    "every_time": "every time (after the cooldown)",
}


# --- numbers and sentences --------------------------------------------------------------------
def format_number(value: float | None) -> str:
    """A threshold or observed value as people write it: 65,000 / 65,012.5 / 1.08345."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1_000:
        text = f"{value:,.2f}"
    elif magnitude >= 1:
        text = f"{value:,.5f}"
    else:
        text = f"{value:.8f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def threshold_text(condition: str, value: float | None, value2: float | None) -> str:
    """`65,000`, or a channel's `64,000–65,000`."""
    if condition in CHANNEL_CONDITIONS:
        return f"{format_number(value)}–{format_number(value2)}"
    return format_number(value)


def rule_summary(field: str, condition: str, value: float | None, value2: float | None) -> str:
    """What a rule watches: `last_price crosses above 65,000`; a flag: `stale becomes true`."""
    if field in FLAG_FIELDS:
        return f"{field} becomes true"
    return f"{field} {CONDITION_LABELS.get(condition, condition)} " + threshold_text(
        condition, value, value2
    )


def trigger_summary(trigger: str, bar: str, cooldown_s: int) -> str:
    """How often a rule may fire: `once per 1m bar`, `once`, `every time (cooldown 60 s)`."""
    if trigger == "once_per_bar":
        return f"once per {bar} bar"
    if trigger == "every_time":
        return f"every time (cooldown {cooldown_s} s)" if cooldown_s else "every time"
    return "once"


def toast_text(firing: Mapping[str, Any] | Firing) -> str:
    """The toast of one firing: `BTC breakout: BTCUSDT last_price 65,012 crossed above 65,000`."""
    f = firing if isinstance(firing, Firing) else Firing.model_validate(firing)
    if f.field == "stale":
        what = f"{f.symbol} went stale"
    elif f.field == "gap_opened":
        what = f"a sequence gap opened on {f.symbol}"
    else:
        past = _PAST.get(f.condition, f.condition)
        threshold = threshold_text(f.condition, f.value, f.value2)
        what = f"{f.symbol} {f.field} {format_number(f.observed)} {past} {threshold}"
    return f"{'Test · ' if f.test else ''}{f.rule_name}: {what}"
