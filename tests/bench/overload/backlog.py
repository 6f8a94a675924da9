"""The backlog's arithmetic: what the ingest check counts and how far it can pass MAX_BACKLOG."""

from __future__ import annotations


def max_handoff_ticks(batch: int, senders: int, ingest_max_batch: int) -> int:
    """The most ticks one group commit (one ingest script call) can carry here: whole requests
    of `batch` ticks while they fit in INGEST_MAX_BATCH, at least one, at most one per sender."""
    return batch * min(senders, max(1, ingest_max_batch // batch))


def backlog_bound(max_backlog: int, batch: int, senders: int, ingest_max_batch: int) -> int:
    """The highest backlog (ticks) the ingest check allows: accepted at <= MAX_BACKLOG - 1, then
    + 2 per new tick of that hand-off (it waits for calc and for Postgres)."""
    return max_backlog - 1 + 2 * max_handoff_ticks(batch, senders, ingest_max_batch)
