"""The naive alert reference, written straight from the README's semantics (no index, no memory
shared between rules): sorted ticks in, expected firings out. The real evaluation
(backend.core.alerts) must agree with it, in unit tests and through the running system."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BAR_S = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}


@dataclass(frozen=True)
class ExpectedFiring:
    rule_id: str
    ts_us: int
    event_id: str
    observed: float


def _holds(rule: dict[str, Any], price: float) -> bool:
    """The condition as a statement about one value (level and channel conditions)."""
    value, value2 = rule.get("value"), rule.get("value2")
    match rule["condition"]:
        case "above":
            return price > value
        case "below":
            return price < value
        case "enters_channel":
            return value <= price <= value2
        case "exits_channel":
            return not (value <= price <= value2)
    raise AssertionError(rule["condition"])


def _fires(rule: dict[str, Any], prev: float | None, price: float) -> bool:
    value = rule.get("value")
    condition = rule["condition"]
    if condition in ("above", "below"):
        # Fires when it becomes true; a first observation that holds counts as becoming true.
        return _holds(rule, price) and (prev is None or not _holds(rule, prev))
    if prev is None:
        return False
    if condition == "crosses_above":
        return prev <= value < price
    if condition == "crosses_below":
        return prev >= value > price
    if condition == "crosses":
        return prev <= value < price or prev >= value > price
    if condition == "enters_channel":
        return not _holds(rule, prev) and _holds(rule, price)  # outside → inside
    if condition == "exits_channel":
        return not _holds(rule, prev) and _holds(rule, price)  # inside → outside
    raise AssertionError(condition)


def expected_price_firings(
    rules: list[dict[str, Any]], ticks: list[tuple[int, str, float]]
) -> list[ExpectedFiring]:
    """`ticks` as (ts_us, event_id, price), any order, duplicates allowed: each distinct tick
    once, in (ts, event_id) order (all of them become the latest in turn)."""
    distinct = sorted({event_id: (ts, event_id, price) for ts, event_id, price in ticks}.values())
    out: list[ExpectedFiring] = []
    for rule in rules:
        prev: float | None = None
        last_fired: int | None = None
        last_bar: int | None = None
        done = False
        for ts_us, event_id, price in distinct:
            fire = _fires(rule, prev, price) and rule.get("enabled", True) and not done
            cooldown_us = rule.get("cooldown_s", 0) * 1_000_000
            if fire and last_fired is not None and ts_us - last_fired < cooldown_us:
                fire = False
            bar = ts_us // 1_000_000 // BAR_S[rule.get("bar", "1m")]
            if fire and rule.get("trigger", "once_per_bar") == "once_per_bar" and bar == last_bar:
                fire = False
            if fire:
                out.append(ExpectedFiring(rule["id"], ts_us, event_id, price))
                last_fired, last_bar = ts_us, bar
                done = rule.get("trigger") == "once"
            prev = price
    return out
