"""Webhook retry policy: what an attempt's outcome means and how long to wait before the next.

Pure (the clock and the random source are passed in) so the policy is tested without a network.
Retryable: timeouts, connection errors, 5xx and 429, the failures a receiver can recover from on
its own. Final: 3xx (we never follow redirects: a redirect could point anywhere, past the deny
list) and every other 4xx (the receiver refuses this request; sending it again changes nothing).
Backoff is exponential with full jitter (AWS's "Exponential Backoff and Jitter"), so the retries of
many alerts that failed together against one receiver spread out instead of arriving in waves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

Outcome = Literal["delivered", "retry", "fail"]

BASE_DELAY_S = 0.5
MAX_DELAY_S = 60.0
MAX_RETRY_AFTER_S = 300.0  # a receiver cannot park a delivery for longer than this per attempt


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One attempt as the sender saw it: an HTTP status, or an error without one."""

    outcome: Outcome
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


def classify_status(status: int) -> Outcome:
    """2xx delivered; 5xx and 429 retryable; anything else (1xx, 3xx, other 4xx) final."""
    if 200 <= status < 300:
        return "delivered"
    if status == 429 or 500 <= status < 600:
        return "retry"
    return "fail"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` in seconds from `now`: delta-seconds or an HTTP date; None if absent or
    unreadable; never negative, at most MAX_RETRY_AFTER_S."""
    if value is None:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def result_for_status(status: int, retry_after: str | None, now: datetime) -> AttemptResult:
    """The attempt result for an HTTP answer (Retry-After read only where it matters)."""
    outcome = classify_status(status)
    error = None if outcome == "delivered" else f"HTTP {status}"
    wait = parse_retry_after(retry_after, now) if outcome == "retry" else None
    return AttemptResult(outcome=outcome, status=status, error=error, retry_after_s=wait)


def next_delay(
    attempt: int,
    max_attempts: int,
    retry_after_s: float | None,
    rng: Callable[[], float],
) -> float | None:
    """Seconds to wait before attempt `attempt + 1` after retryable attempt `attempt` failed, or
    None when `attempt` was the last allowed one (the delivery is dead).

    Full jitter: uniform in [0, min(MAX_DELAY_S, BASE_DELAY_S * 2**(attempt-1))]. A Retry-After
    (already capped) is a floor: the receiver asked us not to come back before it.
    """
    if attempt >= max_attempts:
        return None
    ceiling = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** min(attempt - 1, 30))
    delay = rng() * ceiling
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay
