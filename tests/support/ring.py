"""Reading the realtime ring in tests: every bus event after a position, decoded.

The ring replaced Redis pub/sub, so a test reads what was published from where it started, in
order, without having to subscribe before the publisher acts (and without losing anything while
Redis restarts).
"""

from __future__ import annotations

from typing import Any

from redis import Redis

from backend.bus.realtime import decode_entry
from backend.core.events import RealtimeEvent, decode_event
from backend.core.stream_ids import StreamId, format_id, parse_id


class RingEvents:
    """The events appended to `stream` after construction (or after `after`)."""

    def __init__(self, redis: Redis, stream: str, after: str | None = None) -> None:
        self.redis = redis
        self.stream = stream
        self.position: StreamId = parse_id(after) if after else last_id(redis, stream)
        self.events: list[tuple[str, RealtimeEvent]] = []

    def poll(self) -> list[tuple[str, RealtimeEvent]]:
        """Read what has arrived since the last poll; every (id, event) so far."""
        while True:
            answer: Any = self.redis.xread({self.stream: format_id(self.position)}, count=1000)
            if not answer:
                return self.events
            for raw_id, fields in answer[0][1]:
                entry = decode_entry(raw_id, fields)
                if entry is None:
                    continue
                self.position = entry.id
                self.events.append((entry.id_text, decode_event(entry.payload)))

    def of_type(self, kind: str) -> list[RealtimeEvent]:
        return [event for _, event in self.poll() if event.type == kind]


def last_id(redis: Redis, stream: str) -> StreamId:
    """The ring's last entry id now ((0, 0) when it holds none)."""
    newest: Any = redis.xrevrange(stream, count=1)
    return parse_id(newest[0][0]) if newest else (0, 0)
