from __future__ import annotations

import pytest

from backend.core.ticks import (
    Tick,
    TimeBounds,
    decode_tick,
    differing_fields,
    encode_content,
    encode_tick,
    parse_ts_us,
    us_to_iso,
)
from backend.core.validation import validate_tick

NOW_US = 1_795_000_000_000_000
BOUNDS = TimeBounds(NOW_US, max_age_s=7 * 86_400, max_future_s=5)


def good(**overrides):
    body = {
        "symbol": "BTCUSDT",
        "price": 100.5,
        "volume": 2,
        "source": "binance",
        "ts": NOW_US // 1000,
        "event_id": "e-1",
    }
    body.update(overrides)
    return body


def fields(result) -> dict[str, str]:
    assert isinstance(result, list), result
    return {e["field"]: e["reason"] for e in result}


def test_valid_tick_with_ms_and_iso_times():
    a = validate_tick(good(), BOUNDS)
    b = validate_tick(good(ts=us_to_iso(NOW_US)), BOUNDS)
    assert isinstance(a, Tick) and isinstance(b, Tick)
    assert a.ts_us == b.ts_us == NOW_US
    assert a.received_us == NOW_US


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"symbol": "btcusdt"}, "symbol"),
        ({"symbol": "A" * 33}, "symbol"),
        ({"symbol": "BTC\u0000"}, "symbol"),
        ({"price": 0}, "price"),
        ({"price": -1.5}, "price"),
        ({"price": "100"}, "price"),
        ({"price": True}, "price"),
        ({"price": 1e300}, "price"),
        ({"volume": -0.1}, "volume"),
        ({"source": ""}, "source"),
        ({"source": "x" * 65}, "source"),
        ({"ts": "2026-11-21T10:00:00"}, "ts"),  # naive: no offset
        ({"ts": "yesterday"}, "ts"),
        ({"ts": NOW_US // 1000 + 6_000}, "ts"),  # 6 s in the future
        ({"ts": (NOW_US // 1000) // 1000}, "ts"),  # seconds, not ms: far too old
        ({"ts": 1.5}, "ts"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_id": "a\nb"}, "event_id"),
        ({"seq": -1}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"extra": 1}, "extra"),
    ],
)
def test_each_bad_field_is_named(override, field):
    assert field in fields(validate_tick(good(**override), BOUNDS))


def test_missing_fields_are_named():
    result = fields(validate_tick({"symbol": "BTCUSDT"}, BOUNDS))
    assert set(result) == {"price", "volume", "source", "ts", "event_id"}
    assert result["price"] == "field required"


def test_not_an_object():
    assert fields(validate_tick([1, 2], BOUNDS)) == {"body": "each tick must be a JSON object"}


def test_integer_ts_is_always_milliseconds():
    assert parse_ts_us(1_700_000_000_000) == 1_700_000_000_000_000
    assert parse_ts_us("2023-11-14T22:13:20+00:00") == 1_700_000_000_000_000
    assert parse_ts_us("2023-11-14T23:13:20+01:00") == 1_700_000_000_000_000


def test_wire_round_trip_and_conflict_fields():
    tick = validate_tick(good(seq=7), BOUNDS)
    assert isinstance(tick, Tick)
    import orjson

    assert decode_tick(orjson.loads(encode_tick(tick))) == tick
    other = tick._replace(price=101.0, seq=8, received_us=0)
    assert differing_fields(encode_content(tick), other) == ["price", "seq"]
    assert differing_fields(encode_content(tick), tick._replace(received_us=1)) == []
