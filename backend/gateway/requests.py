"""What a client asks for (`symbols`, `types`, where to start), parsed with field-named errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import JSONResponse

from backend.core.events import (
    ALERT_FIRED,
    FEEDER_CONFIG,
    FEEDER_STATUS,
    SYMBOL_UPDATED,
    TICK_RECEIVED,
)
from backend.core.replay import REPLAY_PROGRESS
from backend.core.stream_ids import StreamId, parse_id
from backend.gateway.access import error

EVENT_TYPES = frozenset(
    {SYMBOL_UPDATED, TICK_RECEIVED, FEEDER_CONFIG, FEEDER_STATUS, ALERT_FIRED, REPLAY_PROGRESS}
)
MAX_SYMBOLS = 10_000


@dataclass(frozen=True, slots=True)
class Wanted:
    symbols: frozenset[str] | None
    types: frozenset[str] | None
    after: StreamId | None  # resume after this id
    invalid_after: str | None  # a Last-Event-ID that is not a ring id (reset + snapshot)


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_wanted(query: Mapping[str, str], last_event_id: str | None) -> Wanted | JSONResponse:
    """The request's filters and start; a 422 naming the field when one is malformed."""
    symbols = _csv(query.get("symbols"))
    if symbols is not None:
        if not symbols or symbols == ["*"]:
            symbols = None
        elif len(symbols) > MAX_SYMBOLS or any(len(s) > 64 for s in symbols):
            return error(
                422, "invalid", "symbols: too many, or one too long", "symbols",
                f"at most {MAX_SYMBOLS} symbols of at most 64 characters",
            )  # fmt: skip
    types = _csv(query.get("types"))
    if types is not None:
        unknown = sorted(set(types) - EVENT_TYPES)
        if unknown:
            return error(
                422, "invalid", f"types: unknown event type {unknown[0]!r}", "types",
                "one of " + ", ".join(sorted(EVENT_TYPES)),
            )  # fmt: skip
    after_text = query.get("after")
    after: StreamId | None = None
    invalid: str | None = None
    if after_text is not None:
        after = parse_id(after_text)
        if after is None:
            return error(
                422, "invalid", "after: not an event id", "after",
                "an event id as sent in `id:` (<ms>-<seq>)",
            )  # fmt: skip
    elif last_event_id:
        after = parse_id(last_event_id)
        if after is None:
            invalid = last_event_id[:64]
    return Wanted(
        symbols=frozenset(symbols) if symbols else None,
        types=frozenset(types) if types else None,
        after=after,
        invalid_after=invalid,
    )
