"""Redis Stream ids (`<ms>-<seq>`) as the realtime protocol's event ids, and the resume rule.

Every realtime event's id is the id Redis gave its ring entry: ordered, unique, and its `ms` part
is the publish time on the Redis server's clock (the gateway benchmark's latency reference). Pure:
the gateway passes the ring's bounds in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
ZERO = (0, 0)

StreamId = tuple[int, int]


def parse_id(text: str | bytes | None) -> StreamId | None:
    """`"1700000000000-3"` as `(1700000000000, 3)`; None for anything that is not a stream id."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    match = _ID.match(text.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


ResumeVerdict = Literal["resume", "reset"]


@dataclass(frozen=True, slots=True)
class ResumeDecision:
    verdict: ResumeVerdict
    reason: str = ""


def decide_resume(
    after: StreamId, first: StreamId | None, last_generated: StreamId
) -> ResumeDecision:
    """Whether the ring still holds every event after `after`.

    Trimming only ever removes the oldest entries, so the ring is continuous after `after` exactly
    when `after` is not older than its first entry. An `after` the ring never reached (a client
    of an earlier Redis, a made-up id) cannot be placed at all. When the ring is empty, only its
    very last id resumes: anything older was trimmed with the events after it.
    """
    if after > last_generated:
        return ResumeDecision("reset", "unknown id: newer than anything this ring has held")
    if first is None:
        if after == last_generated:
            return ResumeDecision("resume")
        return ResumeDecision("reset", "aged out: the ring no longer holds the events after it")
    if after < first:
        return ResumeDecision("reset", "aged out: the ring no longer holds the events after it")
    return ResumeDecision("resume")
