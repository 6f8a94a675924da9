"""One ring entry as it goes out: its SSE frame and its WebSocket message, each built once per
event (however many clients get it), and the gateway's own messages in both encodings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from backend.bus.realtime import Entry
from backend.core.realtime import MISSED, Missed
from backend.core.stream_ids import StreamId

if TYPE_CHECKING:
    from backend.gateway.client_queue import DropRange


class Event:
    """A ring entry on its way to clients; its encodings are built on first use and shared."""

    __slots__ = ("_sse", "_ws", "id", "id_text", "payload", "symbol", "type")

    def __init__(self, entry: Entry) -> None:
        self.id: StreamId = entry.id
        self.id_text = entry.id_text
        self.type = entry.type
        self.symbol = entry.symbol
        self.payload = entry.payload
        self._sse: bytes | None = None
        self._ws: bytes | None = None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = sse_frame(self.type, self.payload, self.id_text)
        return self._sse

    @property
    def ws(self) -> bytes:
        if self._ws is None:
            self._ws = ws_message(self.type, self.payload, self.id_text)
        return self._ws


class Control:
    """A message of the gateway's own (snapshot, reset, missed, ...), queued among events."""

    __slots__ = ("data", "id", "id_text", "symbol", "type")

    def __init__(self, kind: str, data: bytes, at: StreamId | None, at_text: str | None) -> None:
        self.type = kind
        self.data = data
        self.id = at
        self.id_text = at_text
        self.symbol = None

    @classmethod
    def of(cls, kind: str, model: BaseModel, at: StreamId | None = None) -> Control:
        text = f"{at[0]}-{at[1]}" if at is not None else None
        return cls(kind, model.__pydantic_serializer__.to_json(model), at, text)

    @property
    def sse(self) -> bytes:
        return sse_frame(self.type, self.data, self.id_text)

    @property
    def ws(self) -> bytes:
        return ws_message(self.type, self.data, self.id_text)


def sse_frame(kind: str, data: bytes, id_text: str | None) -> bytes:
    """`id:` (when it has one), `event:` and one `data:` line (our JSON has no newlines)."""
    head = b"id: " + id_text.encode() + b"\n" if id_text is not None else b""
    return head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def ws_message(kind: str, data: bytes, id_text: str | None) -> bytes:
    """`{"id": ..., "event": ..., "data": ...}` (no `id` for messages that are not in the ring)."""
    head = b'{"id":' + orjson.dumps(id_text) + b"," if id_text is not None else b"{"
    return head + b'"event":' + orjson.dumps(kind) + b',"data":' + data + b"}"


def sse_preamble(retry_ms: int) -> bytes:
    """What a stream starts with: the reconnect hint for EventSource, and a comment."""
    return f"retry: {retry_ms}\n: connected\n\n".encode()


HEARTBEAT = b": heartbeat\n\n"


def with_missed(dropped: DropRange | None, items: list[Any]) -> list[Any]:
    """`items`, after a `missed` message naming what was dropped since the last write."""
    if dropped is None:
        return items
    missed = Missed(first=dropped.first, last=dropped.last, count=dropped.count)
    return [Control.of(MISSED, missed), *items]
