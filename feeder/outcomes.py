"""What became of each tick sent, and how API answers map to that. Pure: no I/O.

Kept apart from the HTTP code so the single and batch paths count alike and can be tested
without a server.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


class Outcome(enum.StrEnum):
    """What became of one tick."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # already stored (e.g. an earlier attempt landed): a success
    DELIVERED = "delivered"  # batch item stored, accepted or duplicate (the answer only counts)
    CONFLICT = "conflict"  # the event_id is known with different content (first write wins)
    REJECTED = "rejected"  # other 4xx: the API will never take it, so not retried
    FAILED = "failed"  # network errors / 5xx / 429 until the retries ran out

    @property
    def stored(self) -> bool:
        """The API holds this event_id with this content (it will reach Postgres)."""
        return self in (Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.DELIVERED)


@dataclass
class Counters:
    """Per-tick outcomes plus attempts.

    `sent` counts each payload once (first attempt; bad ticks and resends included), `retries`
    each re-sent tick. `rejected` counts only unexpected rejections; the rejections of the
    deliberately malformed ticks go to `bad_rejected`, so a growing `rejected` is always news.
    `dropped`: ticks never delivered (evicted from the full buffer, or left at a forced stop).
    """

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    bad_sent: int = 0
    bad_rejected: int = 0
    retries: int = 0
    errors: int = 0
    dropped: int = 0

    def snapshot(self) -> Counters:
        return Counters(**asdict(self))

    def summary(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())

    @property
    def answered(self) -> int:
        """Ticks the API has given a final answer for."""
        return self.accepted + self.duplicates + self.conflicts + self.rejected + self.bad_rejected

    def count(self, outcome: Outcome, *, bad: bool = False) -> None:
        """Count one tick's final outcome (DELIVERED is counted from the batch totals)."""
        if outcome is Outcome.ACCEPTED:
            self.accepted += 1
        elif outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        elif outcome is Outcome.CONFLICT:
            self.conflicts += 1
        elif outcome is Outcome.REJECTED:
            if bad:
                self.bad_rejected += 1
            else:
                self.rejected += 1
        elif outcome is Outcome.FAILED:
            self.errors += 1


class RetryableStatus(Exception):
    """A 5xx or 429 answer: worth another attempt, after `retry_after` seconds if the API said."""

    def __init__(self, status_code: int, retry_after: float | None, body: str) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after
        self.body = body


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), else None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def rejection_kind(status: int, body: Any) -> tuple[Any, ...]:
    """A key that groups rejections by cause (status + error fields/types), for log-once."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        parts = tuple(
            (str(item.get("field", item.get("loc"))), str(item.get("reason", ""))[:60])
            for item in detail
            if isinstance(item, dict)
        )
        return (status, parts)
    if isinstance(detail, str):
        return (status, detail[:100])
    return (status,)


def _is_conflict(errors: Any) -> bool:
    return isinstance(errors, list) and any(
        isinstance(e, dict)
        and e.get("field") == "event_id"
        and "already accepted" in str(e.get("reason", ""))
        for e in errors
    )


@dataclass
class BatchAnswer:
    """`POST /ingest/ticks`'s 200 answer mapped back to the items sent."""

    accepted: int
    duplicates: int
    outcomes: list[Outcome]
    errors: dict[int, Any]  # index -> the API's errors for that item


def parse_batch_answer(body: Any, size: int) -> BatchAnswer:
    """Items named in `rejected` are conflicts or rejections; all others were stored.

    A malformed answer to a 200 counts every item as stored (the API did take the batch).
    """
    outcomes = [Outcome.DELIVERED] * size
    errors: dict[int, Any] = {}
    if not isinstance(body, dict):
        return BatchAnswer(size, 0, outcomes, errors)
    for item in body.get("rejected") or []:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and 0 <= index < size:
            errors[index] = item.get("errors")
            outcomes[index] = (
                Outcome.CONFLICT if _is_conflict(item.get("errors")) else Outcome.REJECTED
            )
    accepted, duplicates = body.get("accepted"), body.get("duplicates")
    stored = size - len(errors)
    if not (isinstance(accepted, int) and isinstance(duplicates, int)):
        accepted, duplicates = stored, 0
    return BatchAnswer(accepted, duplicates, outcomes, errors)
