"""The Replay page's figure: replay candles over live candles, firings as markers."""

from __future__ import annotations

from datetime import datetime

from tests.unit.ui.alert_samples import make_firing
from tests.unit.ui.replay_samples import candle
from ui.replay_charts import FIRINGS_TRACE, firing_points, replay_figure

TS = ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]


def fired(symbol: str, ts: str, price: float | None, observed: float) -> object:
    tick = {"ts": ts, "event_id": f"{symbol}-{ts}", "price": price}
    return make_firing(alert_id=f"{symbol}{ts}", symbol=symbol, tick=tick, observed=observed)


def test_two_rows_of_one_figure_with_the_firings_on_the_replay_row() -> None:
    replayed = [candle(ts, 100 + i) for i, ts in enumerate(TS)]
    live = [candle(ts, 100 + i) for i, ts in enumerate(TS[:2])]
    firings = [
        fired("AAA", "2026-01-01T00:01:30Z", 101.5, 101.5),
        fired("BBB", "2026-01-01T00:01:40Z", 7.0, 7.0),  # another symbol: not on this chart
    ]
    fig = replay_figure(replayed, live, firings, symbol="AAA", interval="1m", replay_id="r")  # type: ignore[arg-type]
    by_name = {t.name: t for t in fig.data}
    assert list(by_name) == ["AAA replay", FIRINGS_TRACE, "AAA live"]
    replay_trace, marks, live_trace = fig.data
    assert (replay_trace.xaxis, marks.xaxis, live_trace.xaxis) == ("x", "x", "x2")
    assert list(replay_trace.close) == [100, 101, 102] and list(live_trace.close) == [100, 101]
    assert list(marks.x) == [datetime(2026, 1, 1, 0, 1, 30)]  # naive UTC, as plotly.js wants
    assert list(marks.y) == [101.5]
    assert "observed 101.5" in marks.hovertext[0]
    # One shared time axis: zooming the replay zooms the live row too.
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"
    assert fig.layout.uirevision == "replay:r:AAA:1m"
    assert not fig.layout.annotations[2:]  # only the two row titles: both rows have candles


def test_an_empty_row_says_so() -> None:
    fig = replay_figure([], [], [], symbol="AAA", interval="5m", replay_id="r")
    texts = [a.text for a in fig.layout.annotations]
    assert "No replayed candles yet" in texts and "No stored candles in this range" in texts
    assert [len(t.x or ()) for t in fig.data] == [0, 0, 0]


def test_a_firing_without_a_tick_price_sits_at_its_observed_value() -> None:
    xs, ys, _ = firing_points([fired("AAA", TS[0], None, 3.0)], "AAA")  # type: ignore[list-item]
    assert (xs, ys) == ([datetime(2026, 1, 1)], [3.0])
