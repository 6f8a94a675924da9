"""The webhook retry policy: outcome classes, Retry-After, backoff with full jitter, the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from backend.core.alerts.retry import (
    BASE_DELAY_S,
    MAX_DELAY_S,
    MAX_RETRY_AFTER_S,
    classify_status,
    next_delay,
    parse_retry_after,
    result_for_status,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"), (201, "delivered"), (204, "delivered"), (299, "delivered"),
        (500, "retry"), (502, "retry"), (503, "retry"), (599, "retry"), (429, "retry"),
        (400, "fail"), (401, "fail"), (404, "fail"), (410, "fail"), (422, "fail"),
        (301, "fail"), (302, "fail"), (307, "fail"), (308, "fail"), (100, "fail"),
    ],
)  # fmt: skip
def test_classify_status(status: int, outcome: str) -> None:
    assert classify_status(status) == outcome


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    date = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(date, NOW) == 42.0
    past = format_datetime(NOW - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(past, NOW) == 0.0


def test_retry_after_is_capped_and_garbage_ignored() -> None:
    assert parse_retry_after("100000", NOW) == MAX_RETRY_AFTER_S
    far = format_datetime(NOW + timedelta(days=3), usegmt=True)
    assert parse_retry_after(far, NOW) == MAX_RETRY_AFTER_S
    for junk in (None, "", "soon", "-5", "1.5e9x", "Mon, 99 Foo 2026"):
        assert parse_retry_after(junk, NOW) is None


def test_result_reads_retry_after_only_when_retrying() -> None:
    assert result_for_status(429, "3", NOW).retry_after_s == 3.0
    assert result_for_status(503, "3", NOW).retry_after_s == 3.0
    assert result_for_status(400, "3", NOW).retry_after_s is None
    ok = result_for_status(200, "3", NOW)
    assert (ok.outcome, ok.error, ok.retry_after_s) == ("delivered", None, None)
    assert result_for_status(500, None, NOW).error == "HTTP 500"


def test_backoff_doubles_with_full_jitter_and_caps() -> None:
    top = [next_delay(a, 50, None, lambda: 1.0) for a in range(1, 12)]
    assert top[:4] == [BASE_DELAY_S, 2 * BASE_DELAY_S, 4 * BASE_DELAY_S, 8 * BASE_DELAY_S]
    assert max(d for d in top if d is not None) == MAX_DELAY_S
    assert next_delay(40, 50, None, lambda: 1.0) == MAX_DELAY_S  # no overflow late on
    assert next_delay(5, 50, None, lambda: 0.0) == 0.0  # full jitter: anywhere from zero
    assert next_delay(3, 50, None, lambda: 0.5) == 0.5 * 4 * BASE_DELAY_S


def test_retry_after_is_a_floor() -> None:
    assert next_delay(1, 8, 10.0, lambda: 1.0) == 10.0
    assert next_delay(8 - 1, 8, 1.0, lambda: 1.0) == 32.0  # backoff above it wins
    assert next_delay(1, 8, 10_000.0, lambda: 0.0) == MAX_RETRY_AFTER_S


def test_no_delay_once_attempts_are_used_up() -> None:
    assert next_delay(8, 8, None, lambda: 0.5) is None
    assert next_delay(9, 8, 5.0, lambda: 0.5) is None
    assert next_delay(1, 1, None, lambda: 0.5) is None
    assert next_delay(2, 3, None, lambda: 0.5) is not None
