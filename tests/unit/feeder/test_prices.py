"""The price process is GBM with the profile's drift and volatility, and sources stay near the mid.

Statistical checks use fixed seeds and tolerances of 4 standard errors: they test the model's
parameters, not luck, and they are deterministic.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.prices import (
    BP,
    MAX_QUOTE_BPS,
    MS_PER_YEAR,
    PROFILES,
    Market,
    Profile,
    gbm_log_return,
    price_decimals,
    profile_for,
    round_price,
)

T0 = 1_790_000_000_000
N = 100_000


def log_returns(market: Market, symbol: str, steps: list[int]) -> list[float]:
    """Log-returns of `symbol`'s mid over consecutive event times `steps` (ms)."""
    prev = math.log(market.advance(symbol, steps[0]))
    out = []
    for now_ms in steps[1:]:
        cur = math.log(market.advance(symbol, now_ms))
        out.append(cur - prev)
        prev = cur
    return out


def assert_gbm(returns: list[float], profile: Profile, dt_years: float) -> None:
    n = len(returns)
    expected_mean = (profile.drift - profile.vol**2 / 2) * dt_years
    expected_sd = profile.vol * math.sqrt(dt_years)
    mean, sd = statistics.fmean(returns), statistics.pstdev(returns)
    assert abs(mean - expected_mean) < 4 * expected_sd / math.sqrt(n), (mean, expected_mean)
    assert abs(sd - expected_sd) < 4 * expected_sd / math.sqrt(2 * n), (sd, expected_sd)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "EURUSD", "XAUUSD"])
def test_one_second_log_returns_match_the_annual_volatility(symbol: str) -> None:
    market = Market(random.Random(20260101))
    returns = log_returns(market, symbol, [T0 + i * 1_000 for i in range(N + 1)])
    assert_gbm(returns, PROFILES[symbol], 1_000 / MS_PER_YEAR)
    # Annualised realised volatility, as a trader would compute it.
    realised = statistics.pstdev(returns) * math.sqrt(MS_PER_YEAR / 1_000)
    assert realised == pytest.approx(PROFILES[symbol].vol, rel=0.01)


def test_drift_is_visible_over_daily_steps() -> None:
    """With dt = 1 day the drift term is ~25 standard errors: this checks it is really there."""
    profile = Profile(100.0, 0.3, drift=0.5)
    market = Market(random.Random(7), {"X": profile})
    day_ms = 86_400_000
    returns = log_returns(market, "X", [T0 + i * day_ms for i in range(N + 1)])
    assert_gbm(returns, profile, day_ms / MS_PER_YEAR)


def test_dt_comes_from_the_event_times() -> None:
    """Irregular gaps between ticks: returns standardised by their own dt are N(0, 1)."""
    rng = random.Random(3)
    profile = PROFILES["ETHUSDT"]
    market = Market(random.Random(4))
    steps = [T0]
    for _ in range(50_000):
        steps.append(steps[-1] + rng.choice([1, 5, 250, 1_000, 30_000]))
    returns = log_returns(market, "ETHUSDT", steps)
    z = []
    for r, a, b in zip(returns, steps, steps[1:], strict=False):
        dt = (b - a) / MS_PER_YEAR
        z.append((r - (profile.drift - profile.vol**2 / 2) * dt) / (profile.vol * math.sqrt(dt)))
    assert abs(statistics.fmean(z)) < 4 / math.sqrt(len(z))
    assert abs(statistics.pstdev(z) - 1) < 4 / math.sqrt(2 * len(z))


def test_no_time_no_move() -> None:
    market = Market(random.Random(1))
    first = market.advance("AAPL", T0)
    assert first == pytest.approx(190.0)
    assert market.advance("AAPL", T0) == first
    assert market.advance("AAPL", T0 - 5_000) == first  # a clock going back moves nothing
    assert gbm_log_return(random.Random(1), 0.0, 0.5, 0.0) == 0.0


def test_realistic_profiles() -> None:
    assert (profile_for("BTCUSDT").level, profile_for("BTCUSDT").vol) == (60_000.0, 0.60)
    assert (profile_for("EURUSD").level, profile_for("EURUSD").vol) == (1.08, 0.07)
    assert (profile_for("XAUUSD").level, profile_for("XAUUSD").vol) == (2_400.0, 0.15)
    assert (profile_for("NEWCOIN").level, profile_for("NEWCOIN").vol) == (100.0, 0.30)
    assert profile_for("SOLUSDT").vol > profile_for("BTCUSDT").vol


@pytest.mark.parametrize("symbol", ["BTCUSDT", "EURUSD", "AAPL", "ZZZ"])
def test_sources_quote_within_a_few_bps_of_the_mid(symbol: str) -> None:
    market = Market(random.Random(11))
    sources = ["binance", "coinbase", "kraken", "bitstamp"]
    worst = 0.0
    by_source: dict[str, list[float]] = {s: [] for s in sources}
    for i in range(20_000):
        source = sources[i % len(sources)]
        price = market.quote(source, symbol, T0 + i * 100)
        mid = market.mid(symbol)
        rounding = 0.5 * 10.0 ** -price_decimals(mid) / mid
        deviation = abs(price / mid - 1)
        assert deviation <= MAX_QUOTE_BPS * BP + rounding + 1e-12
        worst = max(worst, deviation)
        by_source[source].append(math.log(price / mid))
    assert worst > 0.5 * BP  # sources do differ, not all the same price
    # Each source has its own persistent offset: their average deviations are not all equal.
    means = [statistics.fmean(v) for v in by_source.values()]
    assert max(means) - min(means) > 0.2 * BP


def test_volumes_are_log_normal_around_the_typical_notional() -> None:
    market = Market(random.Random(5))
    market.advance("BTCUSDT", T0)
    logs = [math.log(market.volume("BTCUSDT") * 60_000.0) for _ in range(20_000)]
    assert statistics.fmean(logs) == pytest.approx(math.log(5_000.0), abs=0.05)
    assert statistics.pstdev(logs) == pytest.approx(1.0, abs=0.05)


def test_prices_are_sensibly_rounded() -> None:
    assert round_price(60_123.456) == 60_123.46
    assert round_price(1.0812345) == 1.08123
    assert round_price(12.34567) == 12.346
    assert round_price(0.000123456) == 0.00012346


@given(st.floats(min_value=1e-9, max_value=1e9, allow_nan=False))
def test_round_price_never_zero(price: float) -> None:
    assert round_price(price) > 0
