"""FeederConfig.effective_tps: paused, bursting, after the burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from backend.core.feeder_config import MAX_COUNT, MAX_TPS, Burst, FeederConfig, FeederStatus

NOW = datetime(2026, 11, 21, 14, 30, tzinfo=UTC)


def config(**overrides: object) -> FeederConfig:
    values: dict[str, object] = {"symbols": ["BTCUSDT"], "sources": ["binance"], "tps": 20.0}
    values.update(overrides)
    return FeederConfig.model_validate(values)


def burst(until: datetime | None, multiplier: float = 5.0) -> Burst:
    return Burst(multiplier=multiplier, seconds=30.0, until=until)


def test_plain_tps_without_a_burst():
    assert config().effective_tps(NOW) == 20.0


def test_paused_is_zero_even_during_a_burst():
    assert config(running=False).effective_tps(NOW) == 0.0
    paused = config(running=False, burst=burst(NOW + timedelta(seconds=10)))
    assert paused.effective_tps(NOW) == 0.0


def test_burst_in_progress_multiplies():
    assert config(burst=burst(NOW + timedelta(seconds=10))).effective_tps(NOW) == 100.0
    just_before_end = NOW + timedelta(seconds=10) - timedelta(microseconds=1)
    assert config(burst=burst(NOW + timedelta(seconds=10))).effective_tps(just_before_end) == 100.0


def test_after_until_back_to_tps():
    cfg = config(burst=burst(NOW + timedelta(seconds=10)))
    assert cfg.effective_tps(NOW + timedelta(seconds=10)) == 20.0  # `until` itself: over
    assert cfg.effective_tps(NOW + timedelta(hours=1)) == 20.0


def test_burst_without_until_does_nothing():
    assert config(burst=burst(None)).effective_tps(NOW) == 20.0


def test_burst_is_capped_at_max_tps():
    cfg = config(tps=MAX_TPS, burst=burst(NOW + timedelta(seconds=10), multiplier=100.0))
    assert cfg.effective_tps(NOW) == MAX_TPS


def test_zero_tps_stays_zero_in_a_burst():
    assert config(tps=0.0, burst=burst(NOW + timedelta(seconds=10))).effective_tps(NOW) == 0.0


def test_status_counters_are_bounded_so_they_serialise() -> None:
    # Found by the fuzz run: a 2**100 counter passed validation, then orjson refused it (a 500).
    assert FeederStatus(feeder_id="f", rejected=MAX_COUNT).rejected == MAX_COUNT
    with pytest.raises(ValidationError) as info:
        FeederStatus(feeder_id="f", rejected=2**100)
    assert info.value.errors()[0]["loc"] == ("rejected",)
    with pytest.raises(ValidationError):
        FeederStatus(feeder_id="f", achieved_tps=6.8e307)
