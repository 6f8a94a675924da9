"""When a feeder's last report makes it alive, and when it is forgotten (pure)."""

from __future__ import annotations

import orjson

from backend.core.feeder_liveness import (
    ALIVE_WITHIN_S,
    FORGET_AFTER_S,
    decode_record,
    is_alive,
    is_forgotten,
    received_us,
)
from backend.core.ticks import us_to_iso

NOW_US = 1_795_271_400_000_000


def test_received_at_is_read_only_from_an_aware_iso_time():
    assert received_us({"received_at": us_to_iso(NOW_US)}) == NOW_US
    assert received_us({"received_at": "2026-11-21T10:00:00"}) is None  # no offset
    assert received_us({"received_at": "yesterday"}) is None
    assert received_us({"received_at": 12}) is None
    assert received_us(["not", "a", "record"]) is None


def test_alive_and_forgotten_boundaries_are_inclusive_of_the_limit():
    limit_us = int(ALIVE_WITHIN_S * 1_000_000)
    assert is_alive(NOW_US - limit_us, NOW_US) and not is_alive(NOW_US - limit_us - 1, NOW_US)
    forget_us = int(FORGET_AFTER_S * 1_000_000)
    assert not is_forgotten(NOW_US - forget_us, NOW_US)
    assert is_forgotten(NOW_US - forget_us - 1, NOW_US)
    assert is_forgotten(None, NOW_US)


def test_unreadable_records_decode_to_none():
    assert decode_record(b"{not json") is None
    assert decode_record(orjson.dumps({"a": 1})) == {"a": 1}
