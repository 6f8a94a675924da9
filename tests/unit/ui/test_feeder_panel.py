"""The Feeder page's pure logic: the partial update, TPS and rate conversions, status totals and
rows, rate points and the rate figure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ui.feeder_panel import (
    ALIVE_LABEL,
    CANCEL_BURST,
    MAX_CHART_POINTS,
    SESSION_POINTS_MAX,
    SILENT_LABEL,
    STATUS_COLUMNS,
    TPS_SLIDER_MAX,
    UIREVISION,
    FormValues,
    RatePoint,
    active_burst_until,
    burst_update,
    choose_points,
    config_update,
    describe_update,
    form_fields,
    format_until,
    new_ring_buffer,
    normalize_names,
    percent_from_rate,
    rate_figure,
    rate_from_percent,
    rate_point_from_totals,
    rate_points_from_history,
    record_point,
    resolve_tps,
    status_rows,
    status_totals,
    tps_slider_max,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

CONFIG: dict[str, Any] = {
    "version": 4,
    "running": True,
    "symbols": ["BTCUSDT", "ETHUSDT", "AAPL"],
    "sources": ["binance", "kraken"],
    "tps": 10.0,
    "mode": "single",
    "duplicate_rate": 0.0,
    "out_of_order_rate": 0.07,
    "gap_rate": 0.0,
    "bad_tick_rate": 0.001,
    "burst": None,
}


def unchanged_form(config: dict[str, Any] = CONFIG) -> FormValues:
    """The form exactly as the page builds it from `config`, through its % sliders."""
    return FormValues(
        running=config["running"],
        symbols=list(config["symbols"]),
        sources=list(config["sources"]),
        tps=resolve_tps(config["tps"], config["tps"], config["tps"]),
        mode=config["mode"],
        duplicate_rate=rate_from_percent(percent_from_rate(config["duplicate_rate"])),
        out_of_order_rate=rate_from_percent(percent_from_rate(config["out_of_order_rate"])),
        gap_rate=rate_from_percent(percent_from_rate(config["gap_rate"])),
        bad_tick_rate=rate_from_percent(percent_from_rate(config["bad_tick_rate"])),
    )


class TestConfigUpdate:
    def test_no_change_is_an_empty_update(self) -> None:
        assert config_update(CONFIG, unchanged_form()) == {}

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({"running": False}, {"running": False}),
            ({"tps": 250.0}, {"tps": 250.0}),
            ({"tps": 0.0}, {"tps": 0.0}),
            ({"mode": "batch"}, {"mode": "batch"}),
            ({"sources": ["binance", "kraken", "okx"]}, {"sources": ["binance", "kraken", "okx"]}),
            ({"symbols": ["BTCUSDT"]}, {"symbols": ["BTCUSDT"]}),
            ({"duplicate_rate": 0.05}, {"duplicate_rate": 0.05}),
            ({"out_of_order_rate": 0.0}, {"out_of_order_rate": 0.0}),
            ({"gap_rate": 1.0}, {"gap_rate": 1.0}),
            ({"bad_tick_rate": 0.5}, {"bad_tick_rate": 0.5}),
        ],
    )
    def test_each_field_alone(self, change: dict[str, Any], expected: dict[str, Any]) -> None:
        assert config_update(CONFIG, replace(unchanged_form(), **change)) == expected

    def test_several_fields_go_in_one_update(self) -> None:
        form = replace(unchanged_form(), running=False, tps=5.0, gap_rate=0.2)
        assert config_update(CONFIG, form) == {"running": False, "tps": 5.0, "gap_rate": 0.2}

    def test_rates_from_percent_sliders_carry_no_float_noise(self) -> None:
        # 0.07 * 100 is 7.000000000000001: the round trip must not count as a change...
        assert percent_from_rate(0.07) == 7.0
        assert rate_from_percent(7.000000000000001) == 0.07
        # ... and a moved slider sends the clean fraction.
        form = replace(unchanged_form(), duplicate_rate=rate_from_percent(12.3))
        assert config_update(CONFIG, form) == {"duplicate_rate": 0.123}
        assert rate_from_percent(100.0) == 1.0 and rate_from_percent(0.1) == 0.001

    def test_out_of_range_rates_are_sent_for_the_api_to_refuse(self) -> None:
        form = replace(unchanged_form(), gap_rate=1.5)
        assert config_update(CONFIG, form) == {"gap_rate": 1.5}

    def test_symbols_reordered_is_not_a_change(self) -> None:
        form = replace(unchanged_form(), symbols=["AAPL", "BTCUSDT", "ETHUSDT"])
        assert config_update(CONFIG, form) == {}

    def test_symbols_keep_the_users_order_trimmed_and_unique(self) -> None:
        form = replace(unchanged_form(), symbols=["ETHUSDT", " SOLUSD ", "ETHUSDT", "", "SOLUSD"])
        assert config_update(CONFIG, form) == {"symbols": ["ETHUSDT", "SOLUSD"]}

    def test_a_duplicate_of_an_existing_symbol_is_not_a_change(self) -> None:
        form = replace(unchanged_form(), symbols=[*CONFIG["symbols"], "AAPL ", "BTCUSDT"])
        assert config_update(CONFIG, form) == {}

    def test_invalid_or_empty_symbols_are_sent_for_the_api_to_refuse(self) -> None:
        assert config_update(CONFIG, replace(unchanged_form(), symbols=["bad sym"])) == {
            "symbols": ["bad sym"]
        }
        assert config_update(CONFIG, replace(unchanged_form(), symbols=[])) == {"symbols": []}

    def test_normalize_names(self) -> None:
        assert normalize_names([" a", "b", "a", "", "  ", "c "]) == ["a", "b", "c"]
        assert normalize_names([]) == []


class TestTps:
    def test_exact_wins_when_changed(self) -> None:
        assert resolve_tps(10.0, 500.0, 1234.5) == 1234.5

    def test_slider_when_exact_untouched(self) -> None:
        assert resolve_tps(10.0, 500.0, 10.0) == 500.0

    def test_neither_changed(self) -> None:
        assert resolve_tps(10.0, 10.0, 10.0) == 10.0

    def test_slider_max_grows_with_a_larger_current_tps(self) -> None:
        assert tps_slider_max(10.0) == TPS_SLIDER_MAX
        assert tps_slider_max(5_000.4) == 5_001.0


class TestBurst:
    def test_bodies(self) -> None:
        assert burst_update(5, 60) == {"burst": {"multiplier": 5.0, "seconds": 60.0}}
        assert CANCEL_BURST == {"burst": None}

    def test_active_until(self) -> None:
        until = NOW + timedelta(seconds=25)
        running = {**CONFIG, "burst": {"multiplier": 10, "seconds": 30, "until": until.isoformat()}}
        assert active_burst_until(running, NOW) == until
        assert active_burst_until(running, until + timedelta(seconds=1)) is None
        assert active_burst_until(CONFIG, NOW) is None
        assert active_burst_until({**CONFIG, "burst": {"until": None}}, NOW) is None

    def test_format_until(self) -> None:
        assert format_until(NOW + timedelta(seconds=25), NOW) == "12:00:25 UTC (25 s left)"
        assert format_until(NOW, NOW + timedelta(seconds=3)) == "12:00:00 UTC (0 s left)"


def test_describe_update() -> None:
    update = {"running": False, "tps": 25.0, "symbols": ["BTCUSDT"]}
    assert describe_update(CONFIG, update) == (
        "running on → off; tps 10 → 25; symbols BTCUSDT, ETHUSDT, AAPL → BTCUSDT"
    )
    assert describe_update(CONFIG, {}) == "nothing"


def test_form_fields_ignore_version_and_burst() -> None:
    later = {**CONFIG, "version": 9, "burst": {"multiplier": 2, "seconds": 5, "until": "x"}}
    assert form_fields(later) == form_fields(CONFIG)
    assert form_fields({**CONFIG, "tps": 11.0}) != form_fields(CONFIG)


def feeder(feeder_id: str, alive: bool = True, **fields: Any) -> dict[str, Any]:
    return {
        "feeder_id": feeder_id,
        "alive": alive,
        "received_at": (NOW - timedelta(seconds=1.5)).isoformat(),
        **fields,
    }


class TestStatus:
    def test_totals_sum_counters_of_all_and_tps_of_the_alive(self) -> None:
        feeders = [
            feeder(
                "a", sent=100, accepted=90, rejected=3, buffered=7, target_tps=10, achieved_tps=9
            ),
            feeder("b", sent=50, accepted=50, dropped=2, target_tps=5.0, achieved_tps=5.5),
            feeder("c", alive=False, sent=1, conflicts=1, target_tps=100.0, achieved_tps=100.0),
        ]
        totals = status_totals(feeders)
        assert totals["feeders"] == 3 and totals["alive"] == 2
        assert totals["sent"] == 151 and totals["accepted"] == 140
        assert totals["rejected"] == 3 and totals["conflicts"] == 1
        assert totals["dropped"] == 2 and totals["buffered"] == 7
        assert totals["duplicates"] == 0 and totals["retries"] == 0
        assert totals["target_tps"] == 15.0 and totals["achieved_tps"] == 14.5

    def test_totals_of_nothing(self) -> None:
        totals = status_totals([])
        assert totals["feeders"] == 0 and totals["sent"] == 0 and totals["achieved_tps"] == 0.0

    def test_totals_ignore_garbage_values(self) -> None:
        totals = status_totals([feeder("a", sent="many", accepted=None, achieved_tps=float("nan"))])
        assert totals["sent"] == 0 and totals["accepted"] == 0 and totals["achieved_tps"] == 0.0

    def test_rows(self) -> None:
        rows = status_rows(
            [
                feeder("a", sent=10, achieved_tps=2.5, config_version=3),
                feeder("b", alive=False, last_error="HTTP 503"),
            ],
            NOW,
        )
        assert [list(row) for row in rows] == [list(STATUS_COLUMNS)] * 2
        a, b = rows
        assert a["feeder_id"] == "a" and a["status"] == ALIVE_LABEL
        assert a["sent"] == 10 and a["accepted"] == 0 and a["achieved_tps"] == 2.5
        assert a["config_version"] == "v3" and a["report_age_s"] == pytest.approx(1.5)
        assert a["last_error"] == ""
        assert b["status"] == SILENT_LABEL and b["last_error"] == "HTTP 503"

    def test_row_without_received_at(self) -> None:
        (row,) = status_rows([{"feeder_id": "x"}], NOW)
        assert row["report_age_s"] is None and row["status"] == SILENT_LABEL


class TestRatePoints:
    def test_from_history(self) -> None:
        samples = [
            {"ts": (NOW - timedelta(seconds=2)).isoformat(), "gauges": {
                "feeders_target_tps": 10.0, "feeders_achieved_tps": 9.0}},
            {"ts": NOW.timestamp() * 1000, "gauges": {"feeders_achieved_tps": 8}},
            {"ts": NOW.timestamp() - 4, "gauges": {"feeders_target_tps": 10}},
            {"ts": NOW.isoformat(), "gauges": {"other": 1}},  # neither gauge
            {"ts": "not a time", "gauges": {"feeders_target_tps": 1}},
            {"gauges": {"feeders_target_tps": 1}},
            {"ts": NOW.isoformat(), "gauges": {"feeders_target_tps": float("inf")}},
            "junk",
        ]  # fmt: skip
        assert rate_points_from_history(samples) == [
            RatePoint(NOW - timedelta(seconds=4), 10.0, 0.0),
            RatePoint(NOW - timedelta(seconds=2), 10.0, 9.0),
            RatePoint(NOW, 0.0, 8.0),
        ]

    def test_from_totals(self) -> None:
        totals = status_totals([feeder("a", target_tps=10, achieved_tps=9.5)])
        assert rate_point_from_totals(totals, NOW) == RatePoint(NOW, 10.0, 9.5)

    def test_ring_buffer_is_bounded_and_skips_points_too_close(self) -> None:
        buffer = new_ring_buffer()
        assert record_point(buffer, RatePoint(NOW, 1, 1))
        assert not record_point(buffer, RatePoint(NOW + timedelta(seconds=0.2), 2, 2))
        for i in range(1, SESSION_POINTS_MAX + 50):
            record_point(buffer, RatePoint(NOW + timedelta(seconds=i), i, i))
        assert len(buffer) == SESSION_POINTS_MAX
        assert buffer[-1].target == SESSION_POINTS_MAX + 49

    def test_choose_points_prefers_the_server(self) -> None:
        server = [RatePoint(NOW, 1, 1)]
        session = [RatePoint(NOW, 2, 2)]
        assert choose_points(server, session) == server
        assert choose_points([], session) == session


class TestRateFigure:
    def test_traces_window_and_uirevision(self) -> None:
        points = [
            RatePoint(NOW - timedelta(minutes=10), 1, 1),  # outside the 5-minute window
            RatePoint(NOW - timedelta(seconds=2), 10, 9),
            RatePoint(NOW - timedelta(seconds=3), 10, 8),  # out of order: sorted
            RatePoint(NOW - timedelta(seconds=1), 20, 19),
        ]
        fig = rate_figure(points, NOW)
        assert [trace.name for trace in fig.data] == ["target", "achieved"]
        target, achieved = fig.data
        assert list(target.y) == [10, 10, 20] and list(achieved.y) == [8, 9, 19]
        assert list(achieved.x) == sorted(achieved.x)
        assert target.line.shape == "hv" and target.line.dash == "dash"
        assert fig.layout.uirevision == UIREVISION
        assert not fig.layout.annotations

    def test_bounded(self) -> None:
        start = NOW - timedelta(seconds=299)
        points = [
            RatePoint(start + timedelta(milliseconds=100 * i), i, i)
            for i in range(MAX_CHART_POINTS + 500)
        ]
        fig = rate_figure(points, NOW)
        assert len(fig.data[0].y) == MAX_CHART_POINTS
        assert fig.data[0].y[-1] == MAX_CHART_POINTS + 499  # the newest are kept

    def test_empty_says_so(self) -> None:
        fig = rate_figure([], NOW)
        assert len(fig.data) == 2 and len(fig.data[0].y or ()) == 0
        assert fig.layout.annotations[0].text == "No rate samples yet"
