"""Persistence: drain the Redis outbox stream into Postgres in batches, idempotently.

Each worker process runs one `OutboxFlusher` thread, a consumer in the stream's consumer group.
Entries it has read stay in the group's pending list (in Redis) until the Postgres transaction
that wrote them commits; only then are they acknowledged and deleted. If the process dies, another
flusher claims its pending entries after `OUTBOX_CLAIM_IDLE_MS` and writes them again, which
`ON CONFLICT DO NOTHING` turns into a no-op for the rows that were already committed.
If Postgres is down, the flusher keeps its batch, retries with backoff and reads nothing more;
ingest and live views carry on and the outbox simply grows until Postgres returns.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from redis import Redis
from redis.exceptions import RedisError

from backend.bus.keys import Keys
from backend.bus.outbox import Entry, OutboxStream
from backend.core.ticks import Tick, decode_tick
from backend.storage.ticks_repo import write_ticks

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class OutboxFlusher:
    redis: Redis
    keys: Keys
    pg_conninfo: str
    batch_size: int = 200
    flush_interval_s: float = 1.0
    claim_idle_ms: int = 10_000
    name: str = field(default_factory=consumer_name)
    _pending_ids: list[bytes] = field(default_factory=list)
    _pending_sizes: list[int] = field(default_factory=list)  # ticks per pending entry
    _pending_ticks: list[Tick] = field(default_factory=list)
    _first_pending_at: float | None = None
    _conn: psycopg.Connection[Any] | None = None
    _next_claim_at: float = 0.0
    _backoff_s: float = 0.0
    _group_ready: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    _stream: OutboxStream = field(init=False)

    # --- lifecycle -------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self._stream = OutboxStream(self.redis, self.keys)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="outbox-flusher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, try once more to write what we hold; unwritten entries stay pending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._conn is not None:
            self._conn.close()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except (RedisError, OSError) as exc:
                self._group_ready = False  # e.g. NOGROUP after Redis lost its data
                log.warning("outbox flusher: redis unavailable (%s); retrying", exc)
                self._stop.wait(1.0)
            except Exception:
                log.exception("outbox flusher: unexpected error; retrying")
                self._stop.wait(1.0)
        if self._pending_ticks:
            self._flush()

    # --- one iteration -----------------------------------------------------------------------
    def step(self) -> None:
        if not self._group_ready:
            self._stream.ensure_group()
            self._group_ready = True
        now = time.monotonic()
        # Only claim with empty hands: while we retry a batch, our own entries grow idle too.
        if now >= self._next_claim_at and not self._pending_ids:
            self._claim_idle()
            self._next_claim_at = now + self.claim_idle_ms / 2000
        if len(self._pending_ticks) < self.batch_size:
            self._read(block_ms=self._block_ms())
        if self._due():
            self._flush()

    def _block_ms(self) -> int:
        if self._first_pending_at is None:
            return max(1, int(self.flush_interval_s * 1000))
        remaining = self.flush_interval_s - (time.monotonic() - self._first_pending_at)
        return max(1, int(remaining * 1000))

    def _due(self) -> bool:
        if not self._pending_ticks:
            return False
        if len(self._pending_ticks) >= self.batch_size:
            return True
        assert self._first_pending_at is not None
        return time.monotonic() - self._first_pending_at >= self.flush_interval_s

    def _add(self, entries: list[Entry]) -> None:
        for entry_id, fields in entries:
            if not fields:  # deleted under us (already written by another flusher)
                self._stream.ack_gone(entry_id)
                continue
            if entry_id in self._pending_ids:
                continue
            if self._first_pending_at is None:
                self._first_pending_at = time.monotonic()
            ticks = [decode_tick(raw) for raw in orjson.loads(fields[b"t"])]
            self._pending_ids.append(entry_id)
            self._pending_sizes.append(len(ticks))
            self._pending_ticks.extend(ticks)

    def _read(self, block_ms: int) -> None:
        self._add(self._stream.read(self.name, count=16, block_ms=block_ms))

    def _claim_idle(self) -> None:
        """Take over entries a dead (or stuck) flusher read but never acknowledged."""
        start: str | bytes = "0-0"
        while True:
            claimed = self._stream.claim_idle(
                self.name, min_idle_ms=self.claim_idle_ms, start=start, count=64
            )
            if claimed.entries:
                log.info("outbox flusher: claimed %d idle entries", len(claimed.entries))
                self._add(claimed.entries)
            if claimed.done or len(self._pending_ticks) >= self.batch_size:
                return
            start = claimed.next_start

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.pg_conninfo, connect_timeout=5, autocommit=False)
        return self._conn

    def _flush(self) -> None:
        started = time.monotonic()
        try:
            rows = write_ticks(self._connection(), self._pending_ticks)
        except psycopg.Error as exc:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None
            self._backoff_s = min(MAX_BACKOFF_S, max(0.1, self._backoff_s * 2))
            log.warning(
                "outbox flusher: postgres write failed (%s); %d ticks kept, retry in %.1fs",
                str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                len(self._pending_ticks),
                self._backoff_s,
            )
            self._stop.wait(self._backoff_s)
            return
        elapsed = time.monotonic() - started
        self._backoff_s = 0.0
        self._stream.ack_written(
            list(zip(self._pending_ids, self._pending_sizes, strict=True)),
            rows_written=rows,
            ticks=len(self._pending_ticks),
            seconds=elapsed,
        )
        self._pending_ids.clear()
        self._pending_sizes.clear()
        self._pending_ticks.clear()
        self._first_pending_at = None
