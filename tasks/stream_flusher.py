"""The durable drain of a Redis consumer-group stream into PostgreSQL, written once.

The outbox (`tasks.outbox`) and the alert history (`tasks.alert_history`) persist the same way:
one flusher thread per worker process, a consumer in the stream's group. Entries stay in the
group's pending list until the PostgreSQL transaction that wrote them commits; only then are they
acknowledged (and deleted). A dead or stuck flusher's entries are claimed after `claim_idle_ms`
and written again, which the tables' unique keys turn into a no-op. While PostgreSQL is down the
flusher keeps its batch, retries with backoff and reads nothing more, so the stream simply grows.

`StreamFlusher` owns that machinery (thread lifecycle, the run loop and its Redis-error handling,
the group, claiming, batching by size or interval, the connection and the backoff); a subclass
only says how an entry becomes items (`decode`), how a batch is written (`write`) and how a
committed batch is acknowledged (`acknowledge`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar
from uuid import uuid4

import psycopg
from redis import Redis
from redis.exceptions import RedisError

from backend.bus.keys import Keys
from backend.bus.outbox import ConsumerGroupStream, Entry

MAX_BACKOFF_S = 5.0

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
StreamT = TypeVar("StreamT", bound=ConsumerGroupStream)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:6]}"


@dataclass
class StreamFlusher(ABC, Generic[StreamT, ItemT, ResultT]):
    redis: Redis
    keys: Keys
    pg_conninfo: str
    batch_size: int = 200
    flush_interval_s: float = 1.0
    claim_idle_ms: int = 10_000
    name: str = field(default_factory=consumer_name)
    _pending_ids: list[bytes] = field(default_factory=list)
    _pending_sizes: list[int] = field(default_factory=list)  # items per pending entry
    _pending: list[ItemT] = field(default_factory=list)
    _first_pending_at: float | None = None
    _conn: psycopg.Connection[Any] | None = None
    _next_claim_at: float = 0.0
    _backoff_s: float = 0.0
    _group_ready: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _stream: StreamT = field(init=False)
    _log: logging.Logger = field(init=False, repr=False)

    label: ClassVar[str]  # log prefix, e.g. "outbox flusher"
    thread_name: ClassVar[str]
    unit: ClassVar[str]  # what the items are called in the log, e.g. "ticks"
    read_count: ClassVar[int] = 16  # entries per XREADGROUP

    # --- what a subclass says ----------------------------------------------------------------
    @abstractmethod
    def open_stream(self) -> StreamT:
        """The stream this flusher drains (built once, on this flusher's Redis client)."""

    @abstractmethod
    def decode(self, entry_id: bytes, fields: dict[bytes, bytes]) -> list[ItemT]:
        """The items an entry carries (none if it can never be written: acked with the batch)."""

    @abstractmethod
    def write(self, conn: psycopg.Connection[Any], items: list[ItemT]) -> ResultT:
        """Write a batch in one transaction, idempotently; raises psycopg.Error to retry it."""

    @abstractmethod
    def acknowledge(
        self, *, ids: list[bytes], sizes: list[int], items: list[ItemT], result: ResultT,
        seconds: float,
    ) -> None:  # fmt: skip
        """After the commit: acknowledge the batch's entries (`sizes`: items per entry) and
        record whatever follows from `result` (`seconds`: how long the write took)."""

    # --- lifecycle -------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self._stream = self.open_stream()
        # The subclass's module logger: log lines keep the logger name they always had.
        self._log = logging.getLogger(type(self).__module__)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
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
                self._log.warning("%s: redis unavailable (%s); retrying", self.label, exc)
                self._stop.wait(1.0)
            except Exception:
                self._log.exception("%s: unexpected error; retrying", self.label)
                self._stop.wait(1.0)
        if self._pending_ids:
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
        if len(self._pending) < self.batch_size:
            entries = self._stream.read(self.name, count=self.read_count, block_ms=self._block_ms())
            self._add(entries)
        if self._due():
            self._flush()

    def _block_ms(self) -> int:
        if self._first_pending_at is None:
            return max(1, int(self.flush_interval_s * 1000))
        remaining = self.flush_interval_s - (time.monotonic() - self._first_pending_at)
        return max(1, int(remaining * 1000))

    def _due(self) -> bool:
        if not self._pending_ids:
            return False
        if len(self._pending) >= self.batch_size:
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
            items = self.decode(entry_id, fields)
            self._pending_ids.append(entry_id)
            self._pending_sizes.append(len(items))
            self._pending.extend(items)

    def _claim_idle(self) -> None:
        """Take over entries a dead (or stuck) flusher read but never acknowledged."""
        start: str | bytes = "0-0"
        while True:
            claimed = self._stream.claim_idle(
                self.name, min_idle_ms=self.claim_idle_ms, start=start, count=64
            )
            if claimed.entries:
                self._log.info("%s: claimed %d idle entries", self.label, len(claimed.entries))
                self._add(claimed.entries)
            if claimed.done or len(self._pending) >= self.batch_size:
                return
            start = claimed.next_start

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.pg_conninfo, connect_timeout=5, autocommit=False)
        return self._conn

    def _flush(self) -> None:
        started = time.monotonic()
        try:
            result = self.write(self._connection(), self._pending)
        except psycopg.Error as exc:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None
            self._backoff_s = min(MAX_BACKOFF_S, max(0.1, self._backoff_s * 2))
            self._log.warning(
                "%s: postgres write failed (%s); %d %s kept, retry in %.1fs",
                self.label,
                str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                len(self._pending),
                self.unit,
                self._backoff_s,
            )
            self._stop.wait(self._backoff_s)
            return
        elapsed = time.monotonic() - started
        self._backoff_s = 0.0
        self.acknowledge(
            ids=self._pending_ids, sizes=self._pending_sizes, items=self._pending, result=result,
            seconds=elapsed,
        )  # fmt: skip
        self._pending_ids.clear()
        self._pending_sizes.clear()
        self._pending.clear()
        self._first_pending_at = None
