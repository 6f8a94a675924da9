"""Persistence: drain the Redis outbox stream into Postgres in batches, idempotently.

Each worker process runs one `OutboxFlusher` thread, a consumer in the stream's consumer group.
Entries it has read stay in the group's pending list (in Redis) until the Postgres transaction
that wrote them commits; only then are they acknowledged and deleted. If the process dies, another
flusher claims its pending entries after `OUTBOX_CLAIM_IDLE_MS` and writes them again, which
`ON CONFLICT DO NOTHING` turns into a no-op for the rows that were already committed.
If Postgres is down, the flusher keeps its batch, retries with backoff and reads nothing more;
ingest and live views carry on and the outbox simply grows until Postgres returns.
The machinery is `tasks.stream_flusher.StreamFlusher`; this module says what an entry is (a JSON
list of ticks, field `t`) and how a committed batch is acknowledged (with per-entry tick counts
and the flush stats).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import psycopg

from backend.bus.outbox import OutboxStream
from backend.core.ticks import Tick, decode_tick
from backend.storage.ticks_repo import write_ticks
from tasks.stream_flusher import MAX_BACKOFF_S, StreamFlusher, consumer_name

__all__ = ["MAX_BACKOFF_S", "OutboxFlusher", "consumer_name"]


@dataclass
class OutboxFlusher(StreamFlusher[OutboxStream, Tick, int]):
    label: ClassVar[str] = "outbox flusher"
    thread_name: ClassVar[str] = "outbox-flusher"
    unit: ClassVar[str] = "ticks"
    read_count: ClassVar[int] = 16

    @property
    def _pending_ticks(self) -> list[Tick]:
        return self._pending

    def open_stream(self) -> OutboxStream:
        return OutboxStream(self.redis, self.keys)

    def decode(self, entry_id: bytes, fields: dict[bytes, bytes]) -> list[Tick]:
        return [decode_tick(raw) for raw in orjson.loads(fields[b"t"])]

    def write(self, conn: psycopg.Connection[Any], items: list[Tick]) -> int:
        return write_ticks(conn, items)

    def acknowledge(
        self, *, ids: list[bytes], sizes: list[int], items: list[Tick], result: int,
        seconds: float,
    ) -> None:  # fmt: skip
        self._stream.ack_written(
            list(zip(ids, sizes, strict=True)), rows_written=result, ticks=len(items),
            seconds=seconds,
        )  # fmt: skip
