"""Rows of a history file into ticks: column names, time formats, refusals that name the field,
and the event_id of a row without one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backend.core.history_import import (
    PLACEHOLDER_ID,
    ColumnError,
    DerivedIds,
    RowError,
    map_columns,
    parse_row,
)
from backend.core.ticks import Tick

ROW = {"symbol": "BTCUSDT", "ts": "2020-01-01T00:00:00Z", "price": "100.5", "volume": "2"}


NOW_US = 1_800_000_000_000_000  # 2027: every time in these tests is years older


def parse(cells: dict[str, Any], **options: Any) -> Tick | list[RowError]:
    base: dict[str, Any] = {"line": 7, "default_source": "file", "ts_unit": "ms",
                            "received_us": NOW_US, "max_future_s": 5.0}  # fmt: skip
    parsed = parse_row(cells, **(base | options))
    return parsed if isinstance(parsed, list) else parsed[0]


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
    assert tick == Tick(
        PLACEHOLDER_ID, "BTCUSDT", 1_577_836_800_000_000, 100.5, 2.0, "file", 12, NOW_US
    )
    assert parse(ROW | {"event_id": " t-1 ", "source": "lse"})[:6] == (  # type: ignore[index]
        "t-1",
        "BTCUSDT",
        1_577_836_800_000_000,
        100.5,
        2.0,
        "lse",
    )


def test_a_row_says_whether_its_event_id_must_be_derived() -> None:
    base = {"line": 1, "default_source": "f", "ts_unit": "ms", "received_us": NOW_US,
            "max_future_s": 5.0}  # fmt: skip
    assert parse_row(ROW, **base)[1] is True  # type: ignore[arg-type, index]
    assert parse_row(ROW | {"event_id": "  "}, **base)[1] is True  # type: ignore[arg-type, index]
    assert parse_row(ROW | {"event_id": "e1"}, **base)[1] is False  # type: ignore[arg-type, index]


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
        ({"source": "a\tb"}, "source", "printable"),
        ({"volume": "1e40"}, "volume", "between"),
        ({"ts": "garbage"}, "ts", "ISO-8601"),
        ({"ts": "2027-01-15T08:00:10Z"}, "ts", "in the future"),  # NOW_US + 10 s > skew 5 s
        ({"ts": datetime(2020, 1, 1)}, "ts", "time zone"),  # naive Parquet timestamp
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


def tick(**change: Any) -> Tick:
    base = Tick(PLACEHOLDER_ID, "AAA", 1_000_000, 100.5, 2.0, "x", None, NOW_US)
    return base._replace(**change)


def test_identical_rows_get_distinct_ids_and_the_same_file_the_same_ids() -> None:
    rows = [tick(), tick(), tick(price=100.6), tick(), tick(seq=1)]
    first = [DerivedIds().assign(t).event_id for t in [rows[0]]]
    ids = DerivedIds()
    once = [ids.assign(t).event_id for t in rows]
    again = DerivedIds()
    twice = [again.assign(t).event_id for t in rows]
    assert once == twice and once[0] == first[0]
    assert len(set(once)) == len(rows)
    assert all(e.startswith("imp-") and len(e) == 36 for e in once)


def test_derived_ids_depend_on_the_content_not_on_its_spelling_or_arrival() -> None:
    as_csv = parse(ROW | {"price": "100.50", "volume": "2.000"})
    as_epoch = parse(ROW | {"ts": "1577836800000", "price": 100.5, "volume": 2})
    assert isinstance(as_csv, Tick) and isinstance(as_epoch, Tick)
    assert DerivedIds().assign(as_csv).event_id == DerivedIds().assign(as_epoch).event_id
    later = as_csv._replace(received_us=NOW_US + 1)
    assert DerivedIds().assign(later).event_id == DerivedIds().assign(as_csv).event_id
    other_source = as_csv._replace(source="y")
    assert DerivedIds().assign(other_source).event_id != DerivedIds().assign(as_csv).event_id
