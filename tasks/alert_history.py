"""Alert history: drain the Redis stream `alert_history` into PostgreSQL, idempotently.

The outbox's durability pattern (`tasks.stream_flusher`), for the records the evaluator, the
deliverer and the API's test-fire queue (a firing, each delivery's progress): one flusher thread
per worker process, a consumer in the stream's group. Entries stay pending until the PostgreSQL
transaction that wrote them commits, then are acknowledged and deleted; a dead flusher's entries
are claimed after `claim_idle_ms` and written again, which the history's unique keys make a
no-op. While PostgreSQL is down the flusher keeps its batch, retries with backoff and reads
nothing more, so a firing reaches the history when PostgreSQL returns, exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from pydantic import ValidationError

from backend.bus.alert_history import RECORD_FIELD, AlertHistoryStream
from backend.core.alerts.records import DeliveryRecord, FiredRecord, decode_history_record
from backend.core.alerts.rules import AlertRule
from backend.storage.alerts_repo import write_history
from tasks.stream_flusher import StreamFlusher

log = logging.getLogger(__name__)

HistoryRecord = FiredRecord | DeliveryRecord


@dataclass
class AlertHistoryFlusher(StreamFlusher[AlertHistoryStream, HistoryRecord, list[AlertRule]]):
    batch_size: int = 500
    flush_interval_s: float = 0.2

    label: ClassVar[str] = "alert history"
    thread_name: ClassVar[str] = "alert-history"
    unit: ClassVar[str] = "records"
    read_count: ClassVar[int] = 64

    def open_stream(self) -> AlertHistoryStream:
        return AlertHistoryStream(self.redis, self.keys)

    def decode(self, entry_id: bytes, fields: dict[bytes, bytes]) -> list[HistoryRecord]:
        try:
            return [decode_history_record(fields[RECORD_FIELD])]
        except (KeyError, ValidationError):
            # Not ours to fix and never writable: dropped with the batch's ack, not retried
            # forever (which would hold every later firing back).
            log.exception("alert history: undecodable entry %r dropped", entry_id)
            return []

    def write(self, conn: psycopg.Connection[Any], items: list[HistoryRecord]) -> list[AlertRule]:
        return write_history(conn, items)

    def acknowledge(
        self, *, ids: list[bytes], sizes: list[int], items: list[HistoryRecord],
        result: list[AlertRule], seconds: float,
    ) -> None:  # fmt: skip
        """Also puts the `once` rules the batch disabled into the workers' rule mirror."""
        self._stream.ack_written(ids, result)
        if result:
            log.info("alert history: disabled %d fired `once` rules", len(result))
