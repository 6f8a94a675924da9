"""What the current request, message or flush is about, added to every log line written meanwhile.

`with log_context(trace_id=..., message_id=...):` sets the fields for the code inside (and the
tasks it starts: contextvars are copied into them); `backend.logs` puts them on every record. So a
warning deep in calc names the Dramatiq message and the traces it carries without being told, and
uvicorn's access line names the request's trace id.

Kept apart from `backend.logs` so the hot paths import only this (no formatter, no handlers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextvars import ContextVar, Token
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


class log_context:  # used like a function: `with log_context(trace_id=...):`
    """Add the given (non-None) fields to the log context for the duration of the block; an
    inner block adds to, and may override, the outer one's. A class rather than a
    @contextmanager generator: it runs once per HTTP request and per calc message, and this
    costs a fifth as much."""

    __slots__ = ("_fields", "_token")

    def __init__(
        self,
        *,
        trace_id: str | None = None,
        trace_ids: Sequence[str] | None = None,
        event_id: str | None = None,
        symbol: str | None = None,
        message_id: str | None = None,
    ) -> None:
        fields = dict(current())
        if trace_id is not None:
            fields["trace_id"] = trace_id
        if trace_ids is not None:
            fields["trace_ids"] = list(trace_ids)
        if event_id is not None:
            fields["event_id"] = event_id
        if symbol is not None:
            fields["symbol"] = symbol
        if message_id is not None:
            fields["message_id"] = message_id
        self._fields = fields
        self._token: Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _current.set(self._fields)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


def distinct(trace_ids: Iterable[str]) -> list[str]:
    """The ids in first-seen order, once each (empty ones left out)."""
    return [trace_id for trace_id in dict.fromkeys(trace_ids) if trace_id]


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
