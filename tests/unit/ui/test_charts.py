"""The candlestick figure's structure: OHLC, SMA, VWAP, volume colours, bounds, uirevision."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import pytest
from pydantic import ValidationError

from backend.core.candles import CandleBar
from tests.support.builders import make_candle
from ui.charts import (
    DOWN_COLOR,
    MAX_CANDLES,
    MIN_VISIBLE_BARS,
    UP_COLOR,
    candlestick_figure,
    empty_figure,
    sma,
    uirevision,
)

T0 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)


def candle(i: int, o: float, h: float, low: float, c: float, **extra: Any) -> CandleBar:
    """A candle for minute `i` after T0, as the API sends it."""
    fields: dict[str, Any] = {
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": 1.0 + i,
        "vwap": (o + c) / 2,
    }
    return make_candle(T0 + timedelta(minutes=i), **{**fields, **extra})


def series(n: int) -> list[CandleBar]:
    """`n` candles with close = 100 + i, alternating up and down."""
    return [
        candle(i, 100.0 + i + (-0.5 if i % 2 == 0 else 0.5), 102.0 + i, 98.0 + i, 100.0 + i)
        for i in range(n)
    ]


def trace(fig: go.Figure, kind: str, name: str | None = None) -> Any:
    found = [t for t in fig.data if t.type == kind and (name is None or t.name == name)]
    assert len(found) == 1, f"expected one {kind} trace named {name}, got {len(found)}"
    return found[0]


class TestSma:
    def test_hand_computed_values(self) -> None:
        assert sma([1.0, 2.0, 3.0, 4.0, 6.0], 3) == [None, None, 2.0, 3.0, pytest.approx(13 / 3)]

    def test_period_one_is_the_series_itself(self) -> None:
        assert sma([5.0, 7.5], 1) == [5.0, 7.5]

    def test_a_missing_value_blanks_every_window_that_holds_it(self) -> None:
        assert sma([1.0, None, 3.0, 5.0, 7.0], 2) == [None, None, None, 4.0, 6.0]

    def test_period_longer_than_the_series_gives_no_values(self) -> None:
        assert sma([1.0, 2.0], 5) == [None, None]

    def test_rejects_a_period_below_one(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            sma([1.0], 0)

    def test_exact_where_a_running_sum_would_drift(self) -> None:
        values = [0.1] * 10 + [1e16, 1.0, -1e16]
        assert sma(values, 3)[-1] == pytest.approx(1.0 / 3)
        assert sma(values, 10)[9] == pytest.approx(0.1)


class TestCandlestickFigure:
    def test_candlestick_trace_carries_the_ohlc_in_time_order(self) -> None:
        rows = [candle(1, 11.0, 13.0, 10.0, 12.0), candle(0, 10.0, 12.0, 9.0, 11.0)]
        fig = candlestick_figure(rows, symbol="BTCUSDT", interval="1m")
        cs = trace(fig, "candlestick")
        assert list(cs.open) == [10.0, 11.0]
        assert list(cs.high) == [12.0, 13.0]
        assert list(cs.low) == [9.0, 10.0]
        assert list(cs.close) == [11.0, 12.0]
        # Naive UTC: plotly.js has no time zones.
        assert list(cs.x) == [datetime(2026, 11, 21, 14, 0), datetime(2026, 11, 21, 14, 1)]
        assert cs.increasing.line.color == UP_COLOR
        assert cs.decreasing.line.color == DOWN_COLOR
        assert cs.name == "BTCUSDT"

    def test_sma_overlay_matches_a_hand_computed_case(self) -> None:
        closes = [10.0, 11.0, 13.0, 12.0, 14.0]
        rows = [candle(i, c, c + 1, c - 1, c) for i, c in enumerate(closes)]
        fig = candlestick_figure(rows, symbol="X", interval="1m", sma_period=3)
        line = trace(fig, "scatter", "SMA 3")
        assert list(line.y) == [
            None,
            None,
            pytest.approx(34 / 3),
            pytest.approx(12.0),
            pytest.approx(13.0),
        ]
        assert list(line.x) == list(trace(fig, "candlestick").x)

    def test_sma_uses_candles_before_the_visible_cut(self) -> None:
        rows = series(30)  # closes 100..129
        fig = candlestick_figure(rows, symbol="X", interval="1m", sma_period=5, max_candles=10)
        line = trace(fig, "scatter", "SMA 5")
        assert len(line.y) == 10
        # The first visible candle is i=20: mean of closes 116..120, defined thanks to the extra.
        assert line.y[0] == pytest.approx(118.0)
        assert line.y[-1] == pytest.approx(127.0)

    def test_vwap_overlay_is_the_candles_vwap_with_gaps_kept(self) -> None:
        rows = [
            candle(0, 10.0, 12.0, 9.0, 11.0, vwap=10.4),
            candle(1, 11.0, 11.0, 11.0, 11.0, volume=0.0, vwap=None),
            candle(2, 11.0, 13.0, 10.0, 12.0, vwap=12.25),
        ]
        fig = candlestick_figure(rows, symbol="X", interval="5m")
        vwap = trace(fig, "scatter", "VWAP")
        assert list(vwap.y) == [10.4, None, 12.25]
        assert vwap.connectgaps is False

    def test_volume_bars_sit_in_the_second_row_coloured_by_direction(self) -> None:
        rows = [
            candle(0, 10.0, 12.0, 9.0, 11.0, volume=2.5),  # up
            candle(1, 11.0, 12.0, 9.0, 10.0, volume=4.0),  # down
            candle(2, 10.0, 10.0, 10.0, 10.0, volume=0.0),  # flat counts as up
        ]
        fig = candlestick_figure(rows, symbol="X", interval="1m")
        bars = trace(fig, "bar")
        assert list(bars.y) == [2.5, 4.0, 0.0]
        assert list(bars.marker.color) == [UP_COLOR, DOWN_COLOR, UP_COLOR]
        assert bars.yaxis == "y2"
        assert trace(fig, "candlestick").yaxis == "y"
        assert fig.layout.xaxis.matches == "x2"  # shared x: zooming one row zooms both

    def test_uirevision_is_stable_across_refreshes_and_changes_with_symbol_or_interval(
        self,
    ) -> None:
        first = candlestick_figure(series(3), symbol="BTCUSDT", interval="1m")
        later = candlestick_figure(series(9), symbol="BTCUSDT", interval="1m")
        assert first.layout.uirevision == later.layout.uirevision == uirevision("BTCUSDT", "1m")
        assert candlestick_figure(series(3), symbol="ETHUSDT", interval="1m").layout.uirevision != (
            first.layout.uirevision
        )
        assert candlestick_figure(series(3), symbol="BTCUSDT", interval="5m").layout.uirevision != (
            first.layout.uirevision
        )

    def test_bounded_to_the_newest_candles(self) -> None:
        rows = series(MAX_CANDLES + 200)
        fig = candlestick_figure(rows, symbol="X", interval="1m", max_candles=10_000)
        assert all(len(t.x) == MAX_CANDLES for t in fig.data)
        assert trace(fig, "candlestick").close[-1] == 100.0 + MAX_CANDLES + 199

        small = candlestick_figure(rows, symbol="X", interval="1m", max_candles=50)
        assert all(len(t.x) == 50 for t in small.data)
        assert trace(small, "candlestick").close[0] == 100.0 + MAX_CANDLES + 150

    def test_rangeslider_off_and_transparent_background(self) -> None:
        fig = candlestick_figure(series(3), symbol="X", interval="1m")
        assert fig.layout.xaxis.rangeslider.visible is False
        assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)"

    def test_rows_without_a_time_or_a_price_are_skipped(self) -> None:
        rows = [
            candle(0, 10.0, 12.0, 9.0, 11.0),
            candle(1, 1.0, 1.0, 1.0, 1.0, close=math.nan),
            candle(2, 1.0, 1.0, 1.0, 1.0, ts="garbage"),
        ]
        fig = candlestick_figure(rows, symbol="X", interval="1m")
        assert list(trace(fig, "candlestick").close) == [11.0]
        for junk in ({"open": 1}, {**rows[0].model_dump(), "close": None}):
            with pytest.raises(ValidationError):  # never gets past the contract
                CandleBar.model_validate(junk)

    @pytest.mark.parametrize("rows", [[], [candle(0, 1.0, 1.0, 1.0, 1.0, ts="garbage")]])
    def test_no_usable_candles_gives_an_informative_empty_figure(
        self, rows: list[CandleBar]
    ) -> None:
        fig = candlestick_figure(rows, symbol="AAPL", interval="15m")
        assert len(fig.data) == 0
        texts = [a.text for a in fig.layout.annotations]
        assert texts == ["No 15m candles for AAPL in this range yet"]
        assert fig.layout.uirevision == uirevision("AAPL", "15m")


def test_empty_figure_shows_its_message_and_hides_the_axes() -> None:
    fig = empty_figure("X", "1h", "Waiting for the backend…")
    assert [a.text for a in fig.layout.annotations] == ["Waiting for the backend…"]
    assert fig.layout.xaxis.visible is False
    assert fig.layout.uirevision == "X:1h"


def test_a_young_series_is_drawn_on_an_axis_of_min_visible_bars() -> None:
    # One candle must not be autoscaled into a sub-millisecond axis with a chart-wide body.
    figure = candlestick_figure([candle(0, 1, 2, 0.5, 1.5)], symbol="X", interval="1m")
    start, end = figure.layout.xaxis.range
    last = datetime(2026, 11, 21, 14, 0)  # naive UTC, as the chart draws it
    assert end - start == timedelta(minutes=MIN_VISIBLE_BARS)
    assert end == last + timedelta(seconds=30)
    assert start == last - timedelta(minutes=MIN_VISIBLE_BARS) + timedelta(seconds=30)


def test_a_long_series_keeps_plotlys_autorange() -> None:
    rows = [candle(i, 1, 2, 0.5, 1.5) for i in range(MIN_VISIBLE_BARS)]
    assert candlestick_figure(rows, symbol="X", interval="1m").layout.xaxis.range is None
