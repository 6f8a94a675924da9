"""The Replay page's form as data, and the `ReplayRequest` it stands for. Pure (no Streamlit),
unit-tested.

The request is validated by the very model the API validates (`backend.core.replay`), so what the
form refuses and what the API would refuse are the same thing, named by the same field; the API
still has the last word (a stored rule for a symbol not replayed, say).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import ValidationError

from backend.core.replay import ReplayRequest
from backend.core.validation import FieldError
from ui.alerts_text import rule_summary

SPEED_MIN, SPEED_MAX = 1, 1000  # the model's bounds (`backend.core.replay.Speed`)
SPEED_HINT = f"a number from {SPEED_MIN} to {SPEED_MAX} (× real time), or max"


@dataclass(frozen=True, slots=True)
class InlineRule:
    """The one rule the form can write in place (never stored: it lives in the replay only).
    A blank `symbol` is the first symbol replayed."""

    symbol: str
    field: str = "last_price"
    condition: str = "crosses_above"
    value: float | None = None
    value2: float | None = None
    trigger: str = "once_per_bar"


@dataclass(frozen=True, slots=True)
class ReplayForm:
    """What the analyst entered. Dates and times are UTC; `speed` is the text typed."""

    symbols: Sequence[str]
    from_date: date | None
    from_time: time | None
    to_date: date | None
    to_time: time | None
    speed: str = "max"
    alerts: str = "off"
    rule_ids: Sequence[str] = field(default_factory=tuple)
    inline: InlineRule | None = None


def utc(day: date | None, at: time | None) -> datetime | None:
    """A UTC datetime of a date input and a time input (midnight when the time is blank)."""
    if day is None:
        return None
    return datetime.combine(day, at or time(0, 0), tzinfo=UTC)


def parse_speed(text: str) -> float | str | None:
    """`max`, or a number in 1..1000 (`10`, `10x`, `10×`); None when the text is neither.

    Checked here rather than left to the model: its `float | "max"` union would refuse a bad
    number twice, once per branch, in words about pydantic types."""
    cleaned = text.strip().lower()
    if cleaned == "max":
        return "max"
    try:
        number = float(cleaned.removesuffix("x").removesuffix("×").strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and SPEED_MIN <= number <= SPEED_MAX else None


def inline_body(rule: InlineRule, symbols: Sequence[str]) -> dict[str, Any]:
    """An `AlertRuleSpec` body for the inline rule, named after what it watches."""
    symbol = rule.symbol.strip().upper() or (symbols[0] if symbols else "")
    summary = rule_summary(rule.field, rule.condition, rule.value, rule.value2)
    body: dict[str, Any] = {
        "name": f"{symbol} {summary}"[:120],
        "symbol": symbol,
        "field": rule.field,
        "condition": rule.condition,
        "trigger": rule.trigger,
    }
    if rule.value is not None:
        body["value"] = float(rule.value)
    if rule.value2 is not None:
        body["value2"] = float(rule.value2)
    return body


def request_body(form: ReplayForm) -> dict[str, Any] | list[FieldError]:
    """The `POST /replays` body the form stands for, or what the form itself cannot say.

    Rules go only with `sandbox`: an `off` replay ignores the rule inputs rather than being
    refused for them (the inputs stay filled for the next backtest)."""
    speed = parse_speed(form.speed)
    if speed is None:
        return [{"field": "speed", "reason": SPEED_HINT}]
    start, end = utc(form.from_date, form.from_time), utc(form.to_date, form.to_time)
    missing = [name for name, at in (("from", start), ("to", end)) if at is None]
    if missing:
        return [{"field": name, "reason": "pick a date"} for name in missing]
    assert start is not None and end is not None
    symbols = sorted({s.strip().upper() for s in form.symbols if s.strip()})
    body: dict[str, Any] = {
        "symbols": symbols,
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": end.isoformat().replace("+00:00", "Z"),
        "speed": speed,
        "alerts": form.alerts,
    }
    if form.alerts == "sandbox":
        body["rule_ids"] = list(form.rule_ids)
        body["rules"] = [inline_body(form.inline, symbols)] if form.inline is not None else []
    return body


def build_request(form: ReplayForm) -> ReplayRequest | list[FieldError]:
    """The validated request, or each bad field with its reason (as the API would name it)."""
    body = request_body(form)
    if isinstance(body, list):
        return body
    try:
        return ReplayRequest.model_validate(body)
    except ValidationError as exc:
        return request_errors(exc)


def request_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as `{field, reason}`: `from_` is `from`, a union's branch is dropped
    (`x.constrained-float` → `x`), and a model-level "field: reason" names its field."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        parts = [str(p) for p in err["loc"] if isinstance(p, int) or str(p).isidentifier()]
        parts = ["from" if p == "from_" else p for p in parts]
        reason = str(err["msg"]).removeprefix("Value error, ")
        head, sep, rest = reason.partition(": ")
        if sep and head.replace("_", "").isalnum() and " " not in head:
            parts.append(head)
            reason = rest
        out.append({"field": ".".join(parts) or "body", "reason": reason})
    return _unique(out)


def _unique(errors: Iterable[FieldError]) -> list[FieldError]:
    """One line per field and reason (a union reports each branch's refusal)."""
    seen: set[tuple[str, str]] = set()
    out: list[FieldError] = []
    for error in errors:
        key = (error["field"], error["reason"])
        if key not in seen:
            seen.add(key)
            out.append(error)
    return out


def error_lines(errors: Iterable[FieldError]) -> list[str]:
    """`field: reason`, one per error, for the banner above the Start button."""
    return [f"{e['field']}: {e['reason']}" for e in errors]
