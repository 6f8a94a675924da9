"""The realtime ring: every bus event is one entry of a capped Redis Stream.

Publishers append (`Ring.queue_append`, inside their own MULTI or script, so an event exists
exactly when the write it announces does); the gateway reads it (`RingReader`): live with XREAD
BLOCK, the snapshot it starts from, resumes after a client's last id, and the time-based trim.
Each entry has three fields: `t` (event type), `s` (symbol, empty when the event has none) and `d`
(the event's JSON), so the gateway routes an event without parsing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis as AsyncRedis

from backend.bus.keys import Keys
from backend.bus.lua import source
from backend.core.stream_ids import StreamId, format_id, parse_id
from backend.settings.groups import BusSettings


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to append: its type, its symbol (if any) and its JSON bytes."""

    type: str
    symbol: str | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ring:
    """Where the ring is and how many entries it keeps at most (XADD MAXLEN ~)."""

    key: str
    max_events: int

    @classmethod
    def from_settings(cls, settings: BusSettings) -> Ring:
        return cls(key=settings.realtime_stream, max_events=settings.realtime_max_events)

    def fields(self, event: Outgoing) -> dict[str, bytes | str]:
        return {"t": event.type, "s": event.symbol or "", "d": event.payload}

    def queue_append(self, pipe: Any, event: Outgoing) -> None:
        """Queue the XADD on `pipe` (sync or async, the caller's MULTI or a plain pipeline)."""
        pipe.xadd(self.key, self.fields(event), maxlen=self.max_events, approximate=True)

    async def append_many(self, redis: AsyncRedis, events: Iterable[Outgoing]) -> None:
        """All of them in one round trip (no transaction: each event stands alone)."""
        events = list(events)
        if not events:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for event in events:
                self.queue_append(pipe, event)
            await pipe.execute()


@dataclass(frozen=True, slots=True)
class Entry:
    """One ring entry as read: id, type, symbol (None if none) and the event's JSON."""

    id: StreamId
    id_text: str
    type: str
    symbol: str | None
    payload: bytes


def decode_entry(raw_id: bytes | str, fields: dict[bytes, bytes]) -> Entry | None:
    """A raw XREAD/XRANGE entry; None for an entry that is not ours (no type or no payload)."""
    text = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
    parsed = parse_id(text)
    kind, payload = fields.get(b"t"), fields.get(b"d")
    if parsed is None or kind is None or payload is None:
        return None
    symbol = fields.get(b"s") or b""
    return Entry(parsed, text, kind.decode(), symbol.decode() or None, payload)


def _pairs(flat: Sequence[Any]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


@dataclass(frozen=True, slots=True)
class Bounds:
    """The ring's first entry (None when empty) and the last id it ever generated."""

    first: StreamId | None
    last_generated: StreamId


@dataclass(frozen=True, slots=True)
class Tail:
    """The ring's last id and every stored view, read atomically: the views are exactly what
    the events up to `last_id` made them."""

    last_id: StreamId
    views: dict[str, bytes]


class RingReader:
    """The gateway's reads of the ring (async)."""

    def __init__(self, redis: AsyncRedis, ring: Ring, keys: Keys) -> None:
        self._redis = redis
        self.ring = ring
        self._keys = keys

    async def tail(self) -> Tail:
        """The last id and all views, in one script (nothing can be written between them)."""
        raw = await self._redis.eval(
            source("realtime_tail"), 2, self.ring.key, self._keys.symbols,
            self._keys.view(""),
        )  # fmt: skip
        last_id = parse_id(raw[0]) or (0, 0)
        symbols, views = raw[1], raw[2]
        return Tail(
            last_id,
            {s.decode(): v for s, v in zip(symbols, views, strict=True) if v},
        )

    async def read_live(self, after: StreamId, count: int, block_ms: int) -> list[Entry]:
        """Entries after `after`, waiting up to `block_ms` for the first one."""
        answer = await self._redis.xread(
            {self.ring.key: format_id(after)}, count=count, block=block_ms
        )
        return self._entries(answer)

    async def read_after(self, after: StreamId, count: int) -> tuple[Bounds, list[Entry]]:
        """Up to `count` entries after `after`, with the ring's bounds as they were when read
        (so a caller can tell whether the ring still held everything after `after`)."""
        first, last, items = await self._redis.eval(
            source("realtime_read_after"), 1, self.ring.key, format_id(after), count
        )
        bounds = Bounds(
            first=parse_id(first) if first else None, last_generated=parse_id(last) or (0, 0)
        )
        entries = [
            entry
            for raw_id, flat in items
            if (entry := decode_entry(raw_id, _pairs(flat))) is not None
        ]
        return bounds, entries

    async def trim(self, retention_s: float) -> int:
        """Drop entries older than `retention_s` on the Redis server's clock; how many went."""
        seconds, micros = await self._redis.time()
        min_ms = int(seconds) * 1000 + int(micros) // 1000 - int(retention_s * 1000)
        if min_ms <= 0:
            return 0
        return int(
            await self._redis.execute_command("XTRIM", self.ring.key, "MINID", "~", f"{min_ms}-0")
        )

    @staticmethod
    def _entries(answer: Any) -> list[Entry]:
        entries: list[Entry] = []
        for _stream, items in answer or ():
            for raw_id, fields in items:
                entry = decode_entry(raw_id, fields if isinstance(fields, dict) else _pairs(fields))
                if entry is not None:
                    entries.append(entry)
        return entries
