"""The persistence outbox, as its flushers use it: a stream read through one consumer group.

Entries stay in the group's pending list until the Postgres transaction that wrote them commits;
only then are they acknowledged and deleted, in the same step that takes their ticks off the
ledger's `outbox_ticks` and records the flush. A dead flusher's entries are claimed by another
after they have been idle long enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ResponseError

from backend.bus import stats
from backend.bus.keys import OUTBOX_GROUP, Keys
from backend.bus.lua import queue_outbox_ack

Entry = tuple[bytes, dict[bytes, bytes]]  # stream id, fields (empty: deleted under us)


@dataclass(frozen=True, slots=True)
class Claimed:
    entries: list[Entry]
    next_start: str | bytes  # where the next XAUTOCLAIM call continues; "0-0" when done

    @property
    def done(self) -> bool:
        return self.next_start in (b"0-0", "0-0")


class ConsumerGroupStream:
    """A stream read through one consumer group (the outbox, the alert history): entries stay
    pending until their reader acknowledges them, and a dead reader's are claimed by another."""

    def __init__(self, redis: Redis, stream: str, group: str) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group

    def ensure_group(self) -> None:
        """Create the consumer group from the stream's start ("0"), so nothing staged is skipped."""
        try:
            self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, *, count: int, block_ms: int) -> list[Entry]:
        """New entries for `consumer`, waiting up to `block_ms` for the first."""
        response = self._redis.xreadgroup(
            self._group, consumer, {self._stream: ">"}, count=count, block=block_ms
        )
        return [entry for _stream, entries in response or [] for entry in entries]

    def claim_idle(
        self, consumer: str, *, min_idle_ms: int, start: str | bytes, count: int
    ) -> Claimed:
        """Take over entries another consumer read and left idle for `min_idle_ms`."""
        result = self._redis.xautoclaim(
            self._stream, self._group, consumer, min_idle_ms, start, count=count
        )
        return Claimed(entries=list(result[1]), next_start=result[0])

    def ack_gone(self, entry_id: bytes) -> None:
        """Acknowledge an entry that was deleted under us (another reader wrote it)."""
        self._redis.xack(self._stream, self._group, entry_id)


class OutboxStream(ConsumerGroupStream):
    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__(redis, keys.outbox, OUTBOX_GROUP)
        self._keys = keys

    def ack_written(
        self, entries: Sequence[tuple[bytes, int]], *, rows_written: int, ticks: int, seconds: float
    ) -> int:
        """Acknowledge and delete written entries (id, ticks it carries) and record the flush,
        in one MULTI; returns the ticks taken off `outbox_ticks`."""
        with self._redis.pipeline(transaction=True) as pipe:
            queue_outbox_ack(
                pipe, outbox=self._keys.outbox, stats=self._keys.stats, group=OUTBOX_GROUP,
                entries=entries,
            )  # fmt: skip
            stats.record(pipe, self._keys.stats, stats.flush_fields(rows_written, ticks, seconds))
            deleted, *_ = pipe.execute()
        return int(deleted)
