"""Turning untrusted JSON into ticks, with errors that name the field and the reason."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import ValidationError

from backend.core.tick_fastpath import fast_tick
from backend.core.ticks import Tick, TickIn, TimeBounds, check_time_bounds, to_tick


class FieldError(TypedDict):
    field: str
    reason: str


_REASONS = {
    "missing": "field required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "float_type": "must be a JSON number",
    "int_type": "must be an integer",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    # Unions report e.g. ("price", "float") or ("ts", "str"); the field is the first element.
    return str(loc[0]) if loc else "body"


def errors_from_validation(exc: ValidationError) -> list[FieldError]:
    """One error per field; for union fields pydantic reports each branch, keep the clearest."""
    by_field: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        name = _field_name(err["loc"])
        if err["type"] == "value_error":
            reason = str(err["msg"]).removeprefix("Value error, ")
        elif name == "ts":
            reason = "must be an ISO-8601 string or integer epoch milliseconds"
        else:
            reason = _REASONS.get(err["type"], str(err["msg"]))
        # A value_error (our own check) beats a generic type error from another union branch.
        if name not in by_field or err["type"] == "value_error":
            by_field[name] = reason
    return [{"field": name, "reason": reason} for name, reason in by_field.items()]


def validate_tick(raw: Any, bounds: TimeBounds) -> Tick | list[FieldError]:
    """A `Tick` received at `bounds.now_us`, or the list of what is wrong with `raw`.

    Valid ticks take the hand-written fast path (core.tick_fastpath); whatever it does not
    accept goes through pydantic, which alone words the errors.
    """
    if not isinstance(raw, dict):
        return [{"field": "body", "reason": "each tick must be a JSON object"}]
    tick = fast_tick(raw, bounds)
    if tick is not None:
        return tick
    return validate_tick_model(raw, bounds)


def validate_tick_model(raw: dict[str, Any], bounds: TimeBounds) -> Tick | list[FieldError]:
    """The reference path: `TickIn` (pydantic), `to_tick`, `check_time_bounds`."""
    try:
        tick_in = TickIn.model_validate(raw)
    except ValidationError as exc:
        return errors_from_validation(exc)
    tick = to_tick(tick_in, received_us=bounds.now_us)
    reason = check_time_bounds(tick.ts_us, bounds)
    if reason is not None:
        return [{"field": "ts", "reason": reason}]
    return tick
