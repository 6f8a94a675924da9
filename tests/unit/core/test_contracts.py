"""The contract models: W's exact JSON shape, staleness re-evaluated by readers, candles, gaps."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from backend.core.candles import Candle, CandleBar, CandlesResponse
from backend.core.gaps import Gap, GapRecord
from backend.core.ticks import Tick
from backend.core.view import (
    VIEW_FIELDS_EXCLUDED_FROM_EQUALITY,
    View,
    build_view,
    comparable,
    refresh_stale_json,
    with_staleness,
)
from backend.core.window import ListStore, WindowState, merge
from tests.support.builders import candles_response, make_candle, make_view

T0 = 1_795_000_000_000_000
S = 1_000_000

# The stored and published W, key for key and in this order, as every running reader knows it.
VIEW_KEYS = [
    "symbol",
    "last_price",
    "last_ts",
    "last_event_id",
    "last_source",
    "ticks_total",
    "sma_10",
    "last_10",
    "vwap_1m",
    "volume_1m",
    "trades_1m",
    "high_1m",
    "low_1m",
    "open_1m",
    "change_1m_pct",
    "gaps_open",
    "last_received_at",
    "last_received_us",
    "updated_at",
    "stale",
]


def built(n: int = 12, seq_step: int = 1, updated_at_us: int = T0) -> View:
    ticks = [
        Tick(f"e{i:03d}", "BTCUSDT", T0 + i * S, 100.0 + i, 0.5, "binance", i * seq_step, T0)
        for i in range(n)
    ]
    state, _, _ = merge(WindowState("BTCUSDT"), ListStore(), ticks, T0)
    view = build_view(state, updated_at_us)
    assert view is not None
    return view


def test_stored_json_keeps_every_key_in_order_with_its_value() -> None:
    view = built()
    stored = orjson.loads(view.to_json_bytes())
    assert list(stored) == VIEW_KEYS
    assert list(stored["last_10"][0]) == ["ts", "price", "volume", "source", "event_id"]
    assert stored["last_10"][0] == {
        "ts": "2026-11-18T11:06:51Z",
        "price": 111.0,
        "volume": 0.5,
        "source": "binance",
        "event_id": "e011",
    }
    assert len(stored["last_10"]) == 10
    assert stored["last_ts"] == stored["last_10"][0]["ts"]
    assert stored["stale"] is False and stored["gaps_open"] == 0
    assert View.model_validate_json(view.to_json_bytes()) == view  # readers parse what calc wrote


def test_a_view_is_frozen_and_rejects_unknown_fields() -> None:
    view = built()
    with pytest.raises(ValidationError):
        view.last_price = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        View.model_validate({**view.model_dump(), "price": 1.0})


def test_staleness_is_re_evaluated_with_the_readers_clock() -> None:
    view = built(updated_at_us=T0)
    assert view.stale is False
    assert with_staleness(view, T0 + 5 * S, 10.0) is view  # unchanged: no copy
    later = with_staleness(view, view.last_received_us + 11 * S, 10.0)
    assert later.stale is True and view.stale is False
    raw = orjson.loads(view.to_json_bytes())
    assert refresh_stale_json(raw, view.last_received_us + 11 * S, 10.0)["stale"] is True


def test_an_open_gap_makes_a_view_stale_at_once() -> None:
    gappy = built(n=3, seq_step=2)
    assert gappy.gaps_open == 2
    assert gappy.stale is True
    assert with_staleness(gappy, T0, 1e9).stale is True


def test_comparable_drops_exactly_the_wall_clock_fields() -> None:
    view = built()
    assert set(comparable(view) or {}) == set(VIEW_KEYS) - VIEW_FIELDS_EXCLUDED_FROM_EQUALITY
    assert comparable(view) == comparable(built(updated_at_us=T0 + 60 * S))
    assert comparable(None) is None


def test_builder_views_are_whole_views() -> None:
    assert list(make_view().model_dump()) == VIEW_KEYS
    with pytest.raises(TypeError, match="no field"):
        make_view(last_prize=1.0)


def test_candle_json_is_a_candle_bar() -> None:
    tick = Tick("e1", "BTCUSDT", T0 + 7 * S, 101.5, 2.0, "binance", 1, T0)
    candle = Candle.of_tick(tick, 60 * S)
    assert candle.to_bar() == CandleBar.model_validate(candle.to_json())
    assert candle.to_bar().model_dump() == candle.to_json()
    assert candle.to_bar().vwap == 101.5


def test_candles_response_speaks_from_on_the_wire() -> None:
    answer = candles_response([make_candle()])
    wire = orjson.loads(answer.model_dump_json())
    assert list(wire) == ["symbol", "interval", "from", "to", "candles", "live"]
    assert CandlesResponse.model_validate(wire) == answer
    with pytest.raises(ValidationError):
        CandlesResponse.model_validate({**wire, "interval": "2m"})


def test_gap_json_is_a_gap_record() -> None:
    open_ = Gap("binance", 4, 6, T0)
    closed = Gap("binance", 4, 6, T0, T0 + S)
    assert open_.to_record() == GapRecord.model_validate(open_.to_json())
    assert open_.to_record().missing == 3 and open_.to_record().closed_at is None
    assert closed.to_record().closed_at == "2026-11-18T11:06:41Z"
