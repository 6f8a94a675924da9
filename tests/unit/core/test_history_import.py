"""Rows of a history file into ticks: column names, time formats, refusals that name the field,
and the event_id of a row without one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backend.core.history_import import (
    ColumnError,
    RowError,
    content_key,
    derived_event_id,
    map_columns,
    parse_row,
)
from backend.core.ticks import Tick

ROW = {"symbol": "BTCUSDT", "ts": "2020-01-01T00:00:00Z", "price": "100.5", "volume": "2"}


def parse(cells: dict[str, Any], **options: Any) -> Tick | list[RowError]:
    base: dict[str, Any] = {"line": 7, "default_source": "file", "derived_id": "imp-x",
                            "ts_unit": "ms", "received_us": 1}  # fmt: skip
    return parse_row(cells, **(base | options))


def test_columns_are_found_by_name_or_alias_in_any_order_and_case() -> None:
    header = ["Qty", " TIMESTAMP ", "px", "Ticker", "exchange", "trade_id", "extra"]
    assert map_columns(header) == {
        "volume": 0, "ts": 1, "price": 2, "symbol": 3, "source": 4, "event_id": 5,
    }  # fmt: skip


def test_a_header_without_a_required_column_or_with_one_twice_is_refused() -> None:
    with pytest.raises(ColumnError, match=r"missing column.*price"):
        map_columns(["symbol", "ts", "volume"])
    with pytest.raises(ColumnError, match="ts: more than one"):
        map_columns(["symbol", "ts", "time", "price", "volume"])


def test_a_good_row_becomes_a_tick_older_than_any_live_age_limit() -> None:
    tick = parse(ROW | {"seq": "12"})
    assert isinstance(tick, Tick)
    assert tick == Tick("imp-x", "BTCUSDT", 1_577_836_800_000_000, 100.5, 2.0, "file", 12, 1)


@pytest.mark.parametrize(
    ("ts", "unit", "us"),
    [
        ("1577836800000", "ms", 1_577_836_800_000_000),
        ("1577836800", "s", 1_577_836_800_000_000),
        ("1577836800000001", "us", 1_577_836_800_000_001),
        ("1577836800000001999", "ns", 1_577_836_800_000_001),
        (datetime(2020, 1, 1, tzinfo=UTC), "ms", 1_577_836_800_000_000),
        ("2020-01-01T01:00:00+01:00", "ms", 1_577_836_800_000_000),
    ],
)
def test_times_in_every_accepted_form(ts: Any, unit: Any, us: int) -> None:
    tick = parse(ROW | {"ts": ts}, ts_unit=unit)
    assert isinstance(tick, Tick) and tick.ts_us == us


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"price": "abc"}, "price", "must be a number"),
        ({"price": "nan"}, "price", "finite"),
        ({"price": "-1"}, "price", "> 0"),
        ({"volume": ""}, "volume", "missing"),
        ({"symbol": "btc usd"}, "symbol", "must match"),
        ({"ts": "2020-01-01T00:00:00"}, "ts", "UTC offset"),
        ({"ts": "yesterday"}, "ts", "ISO-8601"),
        ({"seq": "1.5"}, "seq", "integer"),
        ({"seq": "-3"}, "seq", ">= 0"),
        ({"event_id": "x" * 200}, "event_id", "1-128"),
    ],
)
def test_a_bad_row_is_refused_naming_its_line_field_and_reason(
    change: dict[str, Any], field: str, reason: str
) -> None:
    errors = parse(ROW | change)
    assert isinstance(errors, list)
    assert [(e.line, e.field) for e in errors] == [(7, field)]
    assert reason in errors[0].reason


def test_several_bad_fields_are_all_reported() -> None:
    errors = parse({"symbol": "", "ts": "x", "price": "y", "volume": "1"})
    assert isinstance(errors, list)
    assert {e.field for e in errors} == {"symbol", "ts", "price"}


def test_derived_ids_are_deterministic_and_keep_identical_rows_apart() -> None:
    key = content_key(ROW)
    assert content_key(dict(ROW)) == key
    assert content_key(ROW | {"price": "100.6"}) != key
    first, second = derived_event_id(key, 0), derived_event_id(key, 1)
    assert first != second and first == derived_event_id(key, 0)
    assert first.startswith("imp-") and len(first) == 36
