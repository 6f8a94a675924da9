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

Each entry also names the distinct trace ids of its ticks (field `r`, written by the ingest
script); every flush logs one INFO line with the rows written and those trace ids, so a grep for a
trace id ends at the flush that put its ticks in PostgreSQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import psycopg

from backend.bus.outbox import OutboxStream
from backend.core.ticks import Tick, decode_tick
from backend.log_context import trace_fields
from backend.storage.ticks_repo import write_ticks
from tasks.stream_flusher import MAX_BACKOFF_S, StreamFlusher, consumer_name

__all__ = ["MAX_BACKOFF_S", "OutboxFlusher", "consumer_name"]


@dataclass
class OutboxFlusher(StreamFlusher[OutboxStream, Tick, int]):
    label: ClassVar[str] = "outbox flusher"
    thread_name: ClassVar[str] = "outbox-flusher"
    unit: ClassVar[str] = "ticks"
    read_count: ClassVar[int] = 16
    _pending_traces: list[str] = field(default_factory=list)

    @property
    def _pending_ticks(self) -> list[Tick]:
        return self._pending

    def open_stream(self) -> OutboxStream:
        return OutboxStream(self.redis, self.keys)

    def decode(self, entry_id: bytes, fields: dict[bytes, bytes]) -> list[Tick]:
        traces = fields.get(b"r")  # absent in entries staged before trace ids existed
        if traces:
            self._pending_traces.extend(orjson.loads(traces))
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
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(
                "outbox flush: %d rows written (%d ticks, %d entries)",
                result, len(items), len(ids),
                extra={"rows": result, "ticks": len(items), "entries": len(ids),
                       "ms": round(seconds * 1000, 2), **trace_fields(self._pending_traces)},
            )  # fmt: skip
        self._pending_traces.clear()
