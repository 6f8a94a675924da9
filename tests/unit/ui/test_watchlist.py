"""The watchlist's pure logic: rows from views, status badges, and cell formats."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.builders import NOW, make_last_tick, make_view
from ui.watchlist import (
    STATUS_LIVE,
    STATUS_WAITING,
    SYMBOL_IN_LINK,
    WATCHLIST_COLUMNS,
    change_color,
    format_age,
    format_pct,
    format_price,
    format_quantity,
    parse_ts,
    status,
    status_color,
    symbol_link,
    trend,
    watchlist_rows,
)


class TestWatchlistRows:
    def test_one_row_per_symbol_sorted_with_every_column(self) -> None:
        views = {"ETHUSDT": make_view("ETHUSDT", last_price=3_000.0), "AAPL": make_view("AAPL")}
        rows = watchlist_rows(views, NOW)
        assert [row["symbol"] for row in rows] == ["AAPL", "ETHUSDT"]
        assert all(tuple(row) == WATCHLIST_COLUMNS for row in rows)
        eth = rows[1]
        assert eth["last_price"] == 3_000.0
        assert eth["change_1m_pct"] == pytest.approx(0.093)
        assert eth["sma_10"] == 67_000.25
        assert eth["vwap_1m"] == 67_005.0
        assert eth["volume_1m"] == 1.25
        assert eth["trades_1m"] == 7
        assert eth["ticks_total"] == 10
        assert eth["age_s"] == pytest.approx(2.5)

    def test_missing_and_null_fields_become_none(self) -> None:
        view = make_view("EURUSD", vwap_1m=None, last_ts="not a time", last_received_at=iso_now())
        rows = watchlist_rows({"EURUSD": view}, NOW)
        assert rows[0]["vwap_1m"] is None
        assert rows[0]["age_s"] is None

    def test_the_contract_rejects_a_view_without_its_fields(self) -> None:
        with pytest.raises(ValidationError):
            make_view(last_ts=None)
        with pytest.raises(TypeError, match="no field"):
            make_view(price_last=1.0)

    def test_symbol_without_a_view_still_gets_a_row(self) -> None:
        rows = watchlist_rows({"XAUUSD": None}, NOW)
        assert rows == [
            dict.fromkeys(WATCHLIST_COLUMNS) | {"symbol": "XAUUSD", "status": STATUS_WAITING}
        ]

    def test_age_is_never_negative_and_handles_z_and_naive_times(self) -> None:
        future = make_view(last_ts=(NOW + timedelta(seconds=1)).isoformat())
        zulu = make_view(last_ts="2025-03-01T11:59:50Z")
        naive = make_view(last_ts="2025-03-01T11:59:55")
        rows = watchlist_rows({"A": future, "B": zulu, "C": naive}, NOW)
        assert [row["age_s"] for row in rows] == [0.0, 10.0, 5.0]

    def test_naive_now_is_taken_as_utc(self) -> None:
        rows = watchlist_rows({"A": make_view()}, NOW.replace(tzinfo=None))
        assert rows[0]["age_s"] == pytest.approx(2.5)

    def test_numbers_sent_as_strings_are_parsed(self) -> None:
        rows = watchlist_rows({"A": make_view(last_price="1.08345", ticks_total="12")}, NOW)
        assert rows[0]["last_price"] == 1.08345
        assert rows[0]["ticks_total"] == 12

    def test_empty(self) -> None:
        assert watchlist_rows({}, NOW) == []


def test_parse_ts() -> None:
    assert parse_ts("2025-03-01T12:00:00Z") == NOW
    assert parse_ts(NOW) == NOW
    assert parse_ts("not a time") is None
    assert parse_ts("") is None
    assert parse_ts(12) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (67_012.5, "67,012.50"),
        (187.1234, "187.123"),
        (1.08345, "1.08345"),
        (0.00012345, "0.00012345"),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_format_price(value: Any, expected: str) -> None:
    assert format_price(value) == expected


def test_other_formats() -> None:
    assert format_pct(0.1234) == "+0.123%"
    assert format_pct(-2) == "-2.000%"
    assert format_pct(None) == ""
    assert format_quantity(1234.5) == "1,234.5"
    assert format_quantity(7, 0) == "7"
    assert format_quantity(None) == ""
    assert format_age(2.345) == "2.3 s"
    assert format_age(90) == "1.5 min"
    assert format_age(7_200) == "2.0 h"
    assert format_age(None) == ""


def test_change_color() -> None:
    assert "#26a69a" in change_color(0.5)
    assert "#ef5350" in change_color(-0.5)
    assert change_color(0) == ""
    assert change_color(None) == ""


class TestBadgesAndSparkline:
    def test_trend_is_last_10_oldest_first_skipping_junk(self) -> None:
        view = make_view(last_10=[ticked(3.0), ticked("2.5"), ticked(1.0)])
        assert trend(view) == [1.0, 2.5, 3.0]
        assert trend(make_view(last_10=[])) == []
        for junk in ([{"price": None}], ["junk"], None):  # junk never gets past the contract
            with pytest.raises(ValidationError):
                make_view(last_10=junk)

    def test_rows_carry_the_trend_or_none(self) -> None:
        rows = watchlist_rows(
            {"A": make_view(last_10=[ticked(2.0), ticked(1.0)]), "B": make_view()}, NOW
        )
        assert rows[0]["trend"] == [1.0, 2.0]
        assert rows[1]["trend"] is None

    def test_gap_beats_stale_beats_live(self) -> None:
        fresh = (NOW - timedelta(seconds=1)).isoformat()
        quiet = (NOW - timedelta(seconds=42)).isoformat()
        assert status(make_view(last_received_at=fresh), NOW, 10.0) == STATUS_LIVE
        assert status(make_view(last_received_at=quiet), NOW, 10.0) == "◆ stale 42.0 s"
        assert status(make_view(last_received_at=quiet), NOW, 60.0) == STATUS_LIVE
        assert status(make_view(last_received_at=quiet, gaps_open=3), NOW, 10.0) == "▲ gap ×3"
        assert status(None, NOW, 10.0) == STATUS_WAITING

    def test_staleness_is_judged_with_the_readers_clock_not_ws_flag(self) -> None:
        # W said "not stale" when it was built; a minute of silence later it is.
        view = make_view(stale=False, last_received_at=(NOW - timedelta(minutes=1)).isoformat())
        assert status(view, NOW, 10.0).startswith("◆ stale")

    def test_without_received_at_the_event_time_decides(self) -> None:
        view = make_view(last_ts=(NOW - timedelta(seconds=30)).isoformat(), last_received_at="")
        assert status(view, NOW, 10.0).startswith("◆ stale")

    def test_status_colors(self) -> None:
        assert "ffa726" in status_color("▲ gap ×1")
        assert "9e9e9e" in status_color("◆ stale 12.0 s")
        assert "26a69a" in status_color(STATUS_LIVE)
        assert status_color(STATUS_WAITING) == ""


def ticked(price: Any) -> Any:
    """A `last_10` entry with this price (the rest of the tick is irrelevant here)."""
    return make_last_tick(price=price)


def iso_now() -> str:
    return NOW.isoformat()


def test_symbol_link_is_the_symbol_page_relative_to_the_live_page() -> None:
    assert symbol_link("BTCUSDT") == "symbol?symbol=BTCUSDT"
    # A name with URL-special characters survives the round trip through the query string.
    assert symbol_link("BRK.B/USD") == "symbol?symbol=BRK.B%2FUSD"
    match = re.search(SYMBOL_IN_LINK, symbol_link("EURUSD"))
    assert match is not None and match.group(1) == "EURUSD"
