"""W3C trace context (`traceparent`), pure: parse what a client sent, make ids, format the reply.

A tick's trace id is what lets one `grep` follow it through every process's logs (ingest, calc,
the flush to PostgreSQL). A client that already traces sends `traceparent` and we keep its trace
id; anyone else gets one made at ingest. A malformed header is never an error (tracing must not
cost a tick): it is ignored and a new id is made, as the W3C recommendation says a receiver does.

Header: `version-traceid-parentid-flags`, e.g. `00-4bf92f3577b34da6a3ce929d0e0e4736-
00f067aa0ba902b7-01`: lowercase hex; an all-zero trace or parent id is invalid; version `ff` is
invalid; a later version may append fields after a `-`, which are ignored.

The random source is a parameter, so tests get fixed ids. The default is `random.randbytes`:
trace ids need to be unique, not secret, and it costs a fraction of `os.urandom` (a system call)
per request. Python reseeds it in a forked child, so uvicorn workers never share a sequence.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

RandomBytes = Callable[[int], bytes]

_V00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_FUTURE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?", re.S)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
DEFAULT_FLAGS = "01"  # sampled: every trace id we make is recorded (in the logs)


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str  # 32 lowercase hex, not all zeros
    parent_id: str  # 16 lowercase hex, not all zeros: the caller's span
    flags: str = DEFAULT_FLAGS  # 2 lowercase hex


def parse_traceparent(header: str | None) -> TraceParent | None:
    """The trace context in a `traceparent` header; None when absent or invalid."""
    if not header:
        return None
    header = header.strip()
    match = _V00.fullmatch(header)
    if match is None:
        future = _FUTURE.fullmatch(header)
        if future is None or future.group(1) in ("00", "ff"):
            return None  # version 00 must be exact; ff is forbidden
        trace_id, parent_id, flags = future.group(2, 3, 4)
    else:
        trace_id, parent_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, flags)


def new_trace_id(random_bytes: RandomBytes = random.randbytes) -> str:
    """32 hex characters, never all zeros (the spec's "invalid")."""
    while True:
        trace_id = random_bytes(16).hex()
        if trace_id != _ZERO_TRACE:
            return trace_id


def new_span_id(random_bytes: RandomBytes = random.randbytes) -> str:
    """16 hex characters, never all zeros."""
    while True:
        span_id = random_bytes(8).hex()
        if span_id != _ZERO_SPAN:
            return span_id


@dataclass(frozen=True, slots=True)
class RequestTrace:
    """One request's place in a trace: the trace id it carries, and the span id it answers as."""

    trace_id: str
    span_id: str
    flags: str = DEFAULT_FLAGS

    @property
    def traceparent(self) -> str:
        """The response's `traceparent`: the same trace, this server's span."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def request_trace(header: str | None, random_bytes: RandomBytes = random.randbytes) -> RequestTrace:
    """The trace of a request that sent `header` (or none): its trace id kept when valid,
    a new one otherwise; always a new span id for this server's part."""
    parent = parse_traceparent(header)
    span_id = new_span_id(random_bytes)
    if parent is None:
        return RequestTrace(new_trace_id(random_bytes), span_id)
    return RequestTrace(parent.trace_id, span_id, parent.flags)
