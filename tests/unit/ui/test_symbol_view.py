"""The Symbol page's pure logic: URL parameters, candle ranges, metric cards, staleness,
history table and CSV, gap rows."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from backend.core.gaps import GapsResponse
from backend.core.view import View
from tests.support import builders
from ui.charts import MAX_CANDLES
from ui.symbol_view import (
    CLOSED_GAP_COLUMNS,
    EMPTY,
    HISTORY_COLUMNS,
    OPEN_GAP_COLUMNS,
    candle_limit,
    choose,
    clamp_int,
    csv_filename,
    gap_rows,
    history_csv,
    history_frame,
    missing_total,
    normalize_symbol,
    price_format,
    range_note,
    stale_reason,
    symbol_options,
    tick_age_s,
    view_metrics,
)

NOW = datetime(2026, 11, 21, 14, 30, 0, tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def make_view(**overrides: Any) -> View:
    defaults: dict[str, Any] = {
        "last_ts": iso(NOW - timedelta(seconds=3)),
        "last_received_at": iso(NOW - timedelta(seconds=2.5)),
        "ticks_total": 12_345,
    }
    return builders.make_view("BTCUSDT", now=NOW, **{**defaults, **overrides})


def tick_row(i: int, second: float, price: float, **extra: Any) -> dict[str, Any]:
    """A history row as `GET /symbols/{s}/history` sends it."""
    row: dict[str, Any] = {
        "event_id": f"e-{i}",
        "symbol": "BTCUSDT",
        "ts": iso(NOW + timedelta(seconds=second)),
        "price": price,
        "volume": 0.25 * i,
        "source": "binance",
        "seq": i,
        "received_at": iso(NOW + timedelta(seconds=second + 0.1)),
    }
    row.update(extra)
    return row


class TestUrlParameters:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("BTCUSDT", "BTCUSDT"),
            (" btcusdt ", "BTCUSDT"),
            ("EUR/USD", "EUR/USD"),
            ("", None),
            ("not a symbol", None),
            ("-LEADINGDASH", None),
            ("A" * 33, None),
            (None, None),
            (["BTCUSDT"], None),
        ],
    )
    def test_normalize_symbol_follows_the_api_pattern(self, raw: Any, expected: str | None) -> None:
        assert normalize_symbol(raw) == expected

    def test_symbol_options_sorted_unique_with_an_unknown_request_kept_last(self) -> None:
        assert symbol_options(["ETHUSDT", "AAPL", "ETHUSDT", ""], None) == ["AAPL", "ETHUSDT"]
        assert symbol_options(["ETHUSDT", "AAPL"], "ETHUSDT") == ["AAPL", "ETHUSDT"]
        assert symbol_options(["ETHUSDT", "AAPL"], "NOPE") == ["AAPL", "ETHUSDT", "NOPE"]
        assert symbol_options([], None) == []

    def test_choose_falls_back_to_the_default_for_anything_unknown(self) -> None:
        options = ["1m", "5m", "15m", "1h"]
        assert choose("15m", options, "1m") == "15m"
        assert choose("2m", options, "1m") == "1m"
        assert choose(None, options, "1m") == "1m"

    @pytest.mark.parametrize(
        ("raw", "expected"), [("30", 30), (" 7 ", 7), ("1", 2), ("999", 200), ("x", 20), (None, 20)]
    )
    def test_clamp_int(self, raw: Any, expected: int) -> None:
        assert clamp_int(raw, 20, 2, 200) == expected


class TestCandleRange:
    @pytest.mark.parametrize(
        ("range_key", "interval", "expected"),
        [
            ("1h", "1m", 60),
            ("6h", "5m", 72),
            ("24h", "15m", 96),
            ("7d", "1h", 168),
            ("1h", "1h", 1),
            ("24h", "1m", MAX_CANDLES),
            ("7d", "1m", MAX_CANDLES),
            ("bogus", "bogus", 60),  # defaults: 1h of 1m
        ],
    )
    def test_candle_limit_covers_the_range_within_the_bound(
        self, range_key: str, interval: str, expected: int
    ) -> None:
        assert candle_limit(range_key, interval) == expected

    def test_range_note_only_when_the_bound_cuts_the_range(self) -> None:
        assert range_note("6h", "1m") is None
        note = range_note("24h", "1m")
        assert note is not None
        assert "500 1m candles" in note and "8.3 h" in note and "24h" in note


class TestStaleness:
    def test_age_uses_the_receive_time_falling_back_to_event_time(self) -> None:
        assert tick_age_s(make_view(), NOW) == pytest.approx(2.5)
        assert tick_age_s(make_view(last_received_at=""), NOW) == pytest.approx(3.0)
        assert tick_age_s(make_view(last_received_at=iso(NOW + timedelta(seconds=1))), NOW) == 0
        assert tick_age_s(None, NOW) is None
        assert tick_age_s(make_view(last_received_at="", last_ts=""), NOW) is None

    def test_fresh_view_is_not_stale(self) -> None:
        assert stale_reason(make_view(), NOW, stale_after_s=10) is None

    def test_open_gaps_make_it_stale(self) -> None:
        assert stale_reason(make_view(gaps_open=1), NOW, 10) == "1 sequence gap open"
        assert stale_reason(make_view(gaps_open=3), NOW, 10) == "3 sequence gaps open"

    def test_silence_is_judged_with_the_pages_clock_not_the_published_flag(self) -> None:
        quiet = make_view(stale=False, last_received_at=iso(NOW - timedelta(seconds=12)))
        assert stale_reason(quiet, NOW, stale_after_s=10) == "no tick for 12.0 s"

    def test_the_backends_flag_is_honoured(self) -> None:
        assert stale_reason(make_view(stale=True), NOW, 10) == "the backend marks this view stale"

    def test_no_view_no_reason(self) -> None:
        assert stale_reason(None, NOW, 10) is None


class TestViewMetrics:
    def test_cards_in_order_formatted_like_the_watchlist(self) -> None:
        cards = view_metrics(make_view(), NOW)
        assert [(c.label, c.value, c.delta) for c in cards] == [
            ("Last price", "67,012.50", "+0.093%"),
            ("SMA-10", "67,000.25", None),
            ("VWAP-1m", "67,005.00", None),
            ("Volume 1m", "1.25", None),
            ("Trades 1m", "7", None),
            ("Ticks total", "12,345", None),
            ("Last tick", "2.5 s ago", None),
            ("Gaps open", "0", None),
        ]

    def test_missing_numbers_show_a_dash_not_none(self) -> None:
        view = make_view(vwap_1m=None, change_1m_pct=math.nan, last_received_at="", last_ts="")
        cards = {c.label: c for c in view_metrics(view, NOW)}
        assert cards["VWAP-1m"].value == EMPTY
        assert cards["Last price"].delta is None
        assert cards["Last tick"].value == EMPTY

    def test_small_prices_keep_their_decimals_and_falls_show_negative(self) -> None:
        cards = view_metrics(make_view(last_price=1.08345, change_1m_pct=-0.0125), NOW)
        assert (cards[0].value, cards[0].delta) == ("1.08345", "-0.013%")


class TestHistory:
    def test_frame_is_newest_first_and_typed(self) -> None:
        rows = [tick_row(1, 0, 100.0), tick_row(3, 2, 102.25), tick_row(2, 1, 101.5)]
        frame = history_frame(rows)
        assert list(frame.columns) == list(HISTORY_COLUMNS)
        assert list(frame["price"]) == [102.25, 101.5, 100.0]
        assert list(frame["event_id"]) == ["e-3", "e-2", "e-1"]
        assert str(frame["ts"].dt.tz) == "UTC"
        assert frame["ts"].iloc[0] == pd.Timestamp(NOW + timedelta(seconds=2))
        assert frame["seq"].dtype == "Int64"

    def test_same_time_ties_broken_by_event_id_descending(self) -> None:
        rows = [tick_row(1, 0, 1.0, event_id="a"), tick_row(2, 0, 2.0, event_id="b")]
        assert list(history_frame(rows)["event_id"]) == ["b", "a"]

    def test_missing_seq_and_empty_input(self) -> None:
        frame = history_frame([tick_row(1, 0, 100.0, seq=None)])
        assert frame["seq"].isna().all()
        empty = history_frame([])
        assert empty.empty and list(empty.columns) == list(HISTORY_COLUMNS)

    def test_csv_bytes_are_exact_and_round_trip(self) -> None:
        rows = [tick_row(1, 0.123, 100.0, seq=None), tick_row(2, 1, 101.5, source="kraken")]
        data = history_csv(history_frame(rows))
        assert data.decode("utf-8").splitlines() == [
            "ts,price,volume,source,seq,event_id,received_at",
            "2026-11-21T14:30:01.000000Z,101.5,0.5,kraken,2,e-2,2026-11-21T14:30:01.100000Z",
            "2026-11-21T14:30:00.123000Z,100.0,0.25,binance,,e-1,2026-11-21T14:30:00.223000Z",
        ]
        back = pd.read_csv(io.BytesIO(data))
        assert list(back["price"]) == [101.5, 100.0]

    def test_csv_of_no_rows_is_just_the_header(self) -> None:
        assert history_csv(history_frame([])) == (",".join(HISTORY_COLUMNS) + "\n").encode()

    def test_csv_filename_names_symbol_and_utc_time(self) -> None:
        assert csv_filename("BTCUSDT", NOW) == "BTCUSDT_ticks_20261121T143000Z.csv"
        assert csv_filename("EUR/USD:FX", NOW) == "EUR-USD-FX_ticks_20261121T143000Z.csv"
        paris = NOW.astimezone(timezone(timedelta(hours=1)))
        assert csv_filename("X", paris) == "X_ticks_20261121T143000Z.csv"
        assert csv_filename("X", NOW.replace(tzinfo=None)) == "X_ticks_20261121T143000Z.csv"

    @pytest.mark.parametrize(
        ("price", "fmt"), [(67_012.5, "%.2f"), (150.0, "%.3f"), (1.08, "%.5f"), (0.0001, "%.8f")]
    )
    def test_price_format_matches_the_watchlist_decimals(self, price: float, fmt: str) -> None:
        assert price_format(price) == fmt


class TestGaps:
    BODY = builders.gaps_response(
        open_=[
            builders.make_gap(
                source="binance",
                from_seq=4,
                to_seq=5,
                detected_at=iso(NOW - timedelta(seconds=12.5)),
            ),
            builders.make_gap(source="kraken", from_seq=10, to_seq=10, detected_at=iso(NOW)),
        ],
        closed=[
            builders.make_gap(
                source="coinbase",
                from_seq=7,
                to_seq=9,
                detected_at=iso(NOW - timedelta(minutes=5)),
                closed_at=iso(NOW - timedelta(minutes=2)),
            )
        ],
    )

    def test_open_and_closed_rows(self) -> None:
        open_rows, closed_rows = gap_rows(self.BODY, NOW)
        assert [tuple(r) for r in open_rows] == [OPEN_GAP_COLUMNS] * 2
        assert open_rows[0] == {
            "source": "binance",
            "from_seq": 4,
            "to_seq": 5,
            "missing": 2,
            "detected_at": NOW - timedelta(seconds=12.5),
            "open_for": "12.5 s",
        }
        assert open_rows[1]["missing"] == 1
        assert [tuple(r) for r in closed_rows] == [CLOSED_GAP_COLUMNS]
        assert closed_rows[0]["closed_at"] == NOW - timedelta(minutes=2)
        assert closed_rows[0]["lasted"] == "3.0 min"
        assert missing_total(open_rows) == 3

    def test_nothing_to_show(self) -> None:
        assert gap_rows(None, NOW) == ([], [])
        assert gap_rows(builders.gaps_response(), NOW) == ([], [])

    def test_junk_never_gets_past_the_contract(self) -> None:
        body = self.BODY.model_dump(mode="json")
        for junk in ({**body, "open": "nope"}, {**body, "open": [*body["open"], "junk"]}):
            with pytest.raises(ValidationError):
                GapsResponse.model_validate(junk)
        with pytest.raises(ValidationError):  # `missing` is part of every gap
            GapsResponse.model_validate({**body, "open": [{**body["open"][0], "missing": None}]})
