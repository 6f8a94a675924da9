"""Alert history: drain the Redis stream `alert_history` into PostgreSQL, idempotently.

The outbox's durability pattern (`tasks.outbox`), for the records the evaluator, the deliverer
and the API's test-fire queue (a firing, each delivery's progress): one flusher thread per worker
process, a consumer in the stream's group. Entries stay pending until the PostgreSQL transaction
that wrote them commits, then are acknowledged and deleted; a dead flusher's entries are claimed
after `claim_idle_ms` and written again, which the history's unique keys make a no-op. While
PostgreSQL is down the flusher keeps its batch, retries with backoff and reads nothing more, so a
firing reaches the history when PostgreSQL returns, exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pydantic import ValidationError
from redis import Redis
from redis.exceptions import RedisError

from backend.bus.alert_history import RECORD_FIELD, AlertHistoryStream
from backend.bus.keys import Keys
from backend.bus.outbox import Entry
from backend.core.alerts.records import DeliveryRecord, FiredRecord, decode_history_record
from backend.storage.alerts_repo import write_history
from tasks.outbox import MAX_BACKOFF_S, consumer_name

log = logging.getLogger(__name__)


@dataclass
class AlertHistoryFlusher:
    redis: Redis
    keys: Keys
    pg_conninfo: str
    batch_size: int = 500
    flush_interval_s: float = 0.2
    claim_idle_ms: int = 10_000
    name: str = field(default_factory=consumer_name)
    _pending_ids: list[bytes] = field(default_factory=list)
    _pending: list[FiredRecord | DeliveryRecord] = field(default_factory=list)
    _first_pending_at: float | None = None
    _conn: psycopg.Connection[Any] | None = None
    _next_claim_at: float = 0.0
    _backoff_s: float = 0.0
    _group_ready: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _stream: AlertHistoryStream = field(init=False)

    def __post_init__(self) -> None:
        self._stream = AlertHistoryStream(self.redis, self.keys)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="alert-history", daemon=True)
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
                log.warning("alert history: redis unavailable (%s); retrying", exc)
                self._stop.wait(1.0)
            except Exception:
                log.exception("alert history: unexpected error; retrying")
                self._stop.wait(1.0)
        if self._pending:
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
            self._add(self._stream.read(self.name, count=64, block_ms=self._block_ms()))
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
            self._pending_ids.append(entry_id)
            try:
                self._pending.append(decode_history_record(fields[RECORD_FIELD]))
            except (KeyError, ValidationError):
                # Not ours to fix and never writable: dropped with the batch's ack, not retried
                # forever (which would hold every later firing back).
                log.exception("alert history: undecodable entry %r dropped", entry_id)

    def _claim_idle(self) -> None:
        """Take over entries a dead (or stuck) flusher read but never acknowledged."""
        start: str | bytes = "0-0"
        while True:
            claimed = self._stream.claim_idle(
                self.name, min_idle_ms=self.claim_idle_ms, start=start, count=64
            )
            if claimed.entries:
                log.info("alert history: claimed %d idle entries", len(claimed.entries))
                self._add(claimed.entries)
            if claimed.done or len(self._pending) >= self.batch_size:
                return
            start = claimed.next_start

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.pg_conninfo, connect_timeout=5, autocommit=False)
        return self._conn

    def _flush(self) -> None:
        try:
            disabled = write_history(self._connection(), self._pending)
        except psycopg.Error as exc:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None
            self._backoff_s = min(MAX_BACKOFF_S, max(0.1, self._backoff_s * 2))
            log.warning(
                "alert history: postgres write failed (%s); %d records kept, retry in %.1fs",
                str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                len(self._pending),
                self._backoff_s,
            )
            self._stop.wait(self._backoff_s)
            return
        self._backoff_s = 0.0
        self._stream.ack_written(self._pending_ids, disabled)
        if disabled:
            log.info("alert history: disabled %d fired `once` rules", len(disabled))
        self._pending_ids.clear()
        self._pending.clear()
        self._first_pending_at = None
