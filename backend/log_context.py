"""What the current request, message or flush is about, added to every log line written meanwhile.

`with log_context(trace_id=..., message_id=...):` sets the fields for the code inside (and the
tasks it starts: contextvars are copied into them); `backend.logs` puts them on every record. So a
warning deep in calc names the Dramatiq message and the traces it carries without being told, and
uvicorn's access line names the request's trace id.

Kept apart from `backend.logs` so the hot paths import only this (no formatter, no handlers).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# The fields, in the order they appear in a log line.
FIELDS = ("trace_id", "trace_ids", "event_id", "symbol", "message_id")

# A batch line names at most this many distinct trace ids (then `trace_ids_more`: how many it
# left out). A batch is one request in `batch` mode and ~tens of requests in `single` mode at
# 10,000 ticks/s (measured: README "Logs"), so the cap only bounds a pathological line.
MAX_TRACE_IDS = 500

_current: ContextVar[dict[str, Any] | None] = ContextVar("tickstream_log_context", default=None)


def current() -> dict[str, Any]:
    """The fields set now (empty outside any `log_context`); do not mutate."""
    return _current.get() or {}


@contextmanager
def log_context(
    *,
    trace_id: str | None = None,
    trace_ids: Sequence[str] | None = None,
    event_id: str | None = None,
    symbol: str | None = None,
    message_id: str | None = None,
) -> Iterator[None]:
    """Add the given (non-None) fields to the log context for the duration of the block;
    an inner block adds to, and may override, the outer one's."""
    given = {
        "trace_id": trace_id, "trace_ids": list(trace_ids) if trace_ids is not None else None,
        "event_id": event_id, "symbol": symbol, "message_id": message_id,
    }  # fmt: skip
    fields = {**current(), **{k: v for k, v in given.items() if v is not None}}
    token = _current.set(fields)
    try:
        yield
    finally:
        _current.reset(token)


def distinct(trace_ids: Iterable[str]) -> list[str]:
    """The ids in first-seen order, once each."""
    return list(dict.fromkeys(trace_ids))


def trace_fields(trace_ids: Iterable[str], limit: int = MAX_TRACE_IDS) -> dict[str, Any]:
    """A batch line's trace fields: `trace_ids` (distinct, first `limit`), `trace_ids_more` when
    some were left out, and `trace_id` too when there is exactly one (the common case of a batch
    from one request: the same field as a request's own lines)."""
    ids = distinct(trace_ids)
    fields: dict[str, Any] = {"trace_ids": ids[:limit]}
    if len(ids) > limit:
        fields["trace_ids_more"] = len(ids) - limit
    if len(ids) == 1:
        fields["trace_id"] = ids[0]
    return fields
