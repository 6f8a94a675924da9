"""The Symbol page's pure page logic: the captions and messages its live panels show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tests.support.builders import candles_response, make_candle, make_view
from ui.symbol_page.logic import (
    chart_caption,
    clock,
    history_caption,
    open_gaps_message,
    source_caption,
)
from ui.symbol_view import Fetched

NOW = datetime(2026, 11, 21, 14, 30, 5, tzinfo=UTC)


def test_clock_is_utc_and_says_when_there_is_no_time() -> None:
    assert clock(None) == "—"
    assert clock(NOW.astimezone(timezone(timedelta(hours=2)))) == "14:30:05 UTC"


def test_source_caption() -> None:
    view = make_view(last_source="kraken", last_ts="2026-11-21T14:30:04Z")
    assert source_caption(view) == (
        f"Last tick from kraken · event time 2026-11-21T14:30:04Z · view computed {view.updated_at}"
    )


class TestChartCaption:
    def test_counts_at_most_the_limit_and_names_live_ticks(self) -> None:
        bars = [make_candle(NOW - timedelta(minutes=80 - i)) for i in range(80)]
        shown = Fetched(
            NOW, candles_response(bars, live={"pending_ticks_included": 3, "complete": True})
        )
        assert chart_caption(shown, "1m", "1h", 60) == (
            "60 1m candles · includes 3 live tick(s) not yet in Postgres · updated 14:30:05 UTC"
        )

    def test_one_candle_no_live_part(self) -> None:
        shown = Fetched(NOW, candles_response([make_candle(NOW)]))
        assert chart_caption(shown, "1m", "1h", 60) == "1 1m candle · updated 14:30:05 UTC"

    def test_nothing_shown_still_explains_a_cut_range(self) -> None:
        assert chart_caption(None, "1m", "1h", 60) == ""
        assert chart_caption(None, "1m", "24h", 1000).startswith("Showing the last")


def test_open_gaps_message() -> None:
    assert open_gaps_message([{"missing": 1}]) == "1 open sequence gap: 1 tick missing"
    assert open_gaps_message([{"missing": 2}, {"missing": 3}]) == (
        "2 open sequence gaps: 5 ticks missing"
    )


def test_history_caption() -> None:
    assert history_caption(1, NOW) == "1 tick · updated 14:30:05 UTC"
    assert history_caption(200, NOW) == "200 ticks · updated 14:30:05 UTC"
