"""The Feeder page's pure page logic: widgets read into FormValues, the burst flash, the config
badges, the drift note and the table's total row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ui.feeder_page.logic import (
    burst_outcome,
    config_badges,
    drift_note,
    form_values,
    total_row,
)
from ui.feeder_panel import STATUS_COLUMNS, FormValues, config_update, status_totals

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CONFIG: dict[str, Any] = {
    "version": 4,
    "running": True,
    "symbols": ["BTCUSDT", "ETHUSDT"],
    "sources": ["binance"],
    "tps": 10.0,
    "mode": "single",
    "duplicate_rate": 0.0,
    "out_of_order_rate": 0.07,
    "gap_rate": 0.0,
    "bad_tick_rate": 0.001,
    "burst": None,
}
WIDGETS: dict[str, Any] = {
    "running": True,
    "symbols": ("BTCUSDT", "ETHUSDT"),
    "sources": ["binance"],
    "tps_slider": 10.0,
    "tps_exact": 10.0,
    "mode": "single",
    "duplicate_rate": 0.0,
    "out_of_order_rate": 7.0,
    "gap_rate": 0.0,
    "bad_tick_rate": 0.1,
}


def running_burst(seconds_left: float) -> dict[str, Any]:
    until = (NOW + timedelta(seconds=seconds_left)).isoformat()
    return {**CONFIG, "version": 5, "burst": {"multiplier": 10, "seconds": 30, "until": until}}


class TestFormValues:
    def test_widgets_as_the_config_gives_no_update(self) -> None:
        form = form_values(CONFIG, WIDGETS.__getitem__)
        assert form == FormValues(
            running=True,
            symbols=["BTCUSDT", "ETHUSDT"],
            sources=["binance"],
            tps=10.0,
            mode="single",
            duplicate_rate=0.0,
            out_of_order_rate=0.07,
            gap_rate=0.0,
            bad_tick_rate=0.001,
        )
        assert config_update(CONFIG, form) == {}

    def test_percent_sliders_become_rates_and_exact_tps_wins_when_changed(self) -> None:
        widgets = {**WIDGETS, "gap_rate": 2.5, "tps_slider": 40.0, "tps_exact": 25.0}
        form = form_values(CONFIG, widgets.__getitem__)
        assert form.gap_rate == 0.025 and form.tps == 25.0
        assert config_update(CONFIG, form) == {"gap_rate": 0.025, "tps": 25.0}

    def test_slider_tps_when_exact_untouched(self) -> None:
        form = form_values(CONFIG, {**WIDGETS, "tps_slider": 40.0}.__getitem__)
        assert form.tps == 40.0


class TestBurstOutcome:
    def test_cancelled(self) -> None:
        outcome = burst_outcome({"burst": None}, {**CONFIG, "version": 6}, NOW)
        assert outcome == ("success", "Burst cancelled (config v6).")

    def test_started_says_until_when(self) -> None:
        update = {"burst": {"multiplier": 10.0, "seconds": 30.0}}
        assert burst_outcome(update, running_burst(30), NOW) == (
            "success",
            "Market open: ×10 for 30 s, until 12:00:30 UTC (30 s left).",
        )

    def test_a_start_the_config_does_not_show_is_not_called_started(self) -> None:
        update = {"burst": {"multiplier": 10.0, "seconds": 30.0}}
        kind, message = burst_outcome(update, running_burst(-1), NOW)
        assert kind == "info" and message == "Config v5 has no running burst."


class TestConfigLine:
    def test_badges(self) -> None:
        assert config_badges(CONFIG, NOW) == [
            ":blue-badge[Config v4]",
            ":green-badge[Running]",
            ":gray-badge[10 TPS · single]",
        ]
        paused = config_badges({**running_burst(25), "running": False, "mode": "batch"}, NOW)
        assert paused[1:] == [
            ":orange-badge[Paused]",
            ":gray-badge[10 TPS · batch]",
            ":violet-badge[Burst ×10 until 12:00:25 UTC (25 s left)]",
        ]

    def test_drift_note_only_when_a_form_field_moved(self) -> None:
        assert drift_note(None, CONFIG) is None
        assert drift_note(CONFIG, running_burst(10)) is None  # version and burst are not fields
        note = drift_note(CONFIG, {**CONFIG, "version": 7, "gap_rate": 0.25})
        assert note is not None and note.startswith(
            "The config changed since this form was loaded (v4 → v7)."
        )


def test_total_row() -> None:
    feeders = [
        {"feeder_id": "a", "alive": True, "sent": 10, "achieved_tps": 2.0},
        {"feeder_id": "b", "alive": False, "sent": 5, "achieved_tps": 1.0},
    ]
    row = total_row(status_totals(feeders))
    assert list(row) == list(STATUS_COLUMNS)
    assert row["feeder_id"] == "Σ total" and row["status"] == "1 alive"
    assert row["sent"] == 15 and row["achieved_tps"] == 2.0
    assert row["config_version"] == "" and row["last_error"] == ""
    assert row["report_age_s"] is None
