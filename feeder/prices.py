"""The price process: one geometric Brownian motion per symbol, quoted by several sources.

Pure: randomness comes from the `random.Random` passed in and time from the event times passed
to `Market.quote`, so a seed and a clock reproduce every price and tests need neither.

Each symbol has one shared mid that follows GBM with a realistic annualised volatility, advanced
by the event time elapsed since its previous tick (so the statistics are right at any TPS, and
across pauses). Each source quotes around that mid with a small persistent offset plus per-tick
noise, bounded to a few basis points, as real venues disagree slightly about one market.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MS_PER_YEAR = 365.25 * 86_400 * 1_000
BP = 1e-4


@dataclass(frozen=True)
class Profile:
    """A symbol's starting level, annualised volatility and annualised drift (of the price)."""

    level: float
    vol: float
    drift: float = 0.0
    notional: float = 5_000.0  # typical value of one trade; sizes are log-normal around it


PROFILES: dict[str, Profile] = {
    "BTCUSDT": Profile(60_000.0, 0.60),
    "ETHUSDT": Profile(3_000.0, 0.75),
    "SOLUSDT": Profile(150.0, 0.90),
    "XAUUSD": Profile(2_400.0, 0.15),
    "EURUSD": Profile(1.08, 0.07, notional=100_000.0),
    "GBPUSD": Profile(1.27, 0.08, notional=100_000.0),
    "AAPL": Profile(190.0, 0.25),
    "MSFT": Profile(420.0, 0.25),
}
DEFAULT_PROFILE = Profile(100.0, 0.30)
START_LEVELS: dict[str, float] = {symbol: p.level for symbol, p in PROFILES.items()}

# Per-source quoting: a persistent offset per (source, symbol) and per-tick noise, in bps,
# each clipped so a quote never strays more than MAX_QUOTE_BPS from the mid.
SOURCE_OFFSET_BPS = 1.5
MAX_SOURCE_OFFSET_BPS = 3.0
QUOTE_NOISE_BPS = 1.0
MAX_QUOTE_NOISE_BPS = 2.0
MAX_QUOTE_BPS = MAX_SOURCE_OFFSET_BPS + MAX_QUOTE_NOISE_BPS
VOLUME_SIGMA = 1.0  # of log-volume: a few trades are 10x the typical size, most are smaller


def profile_for(symbol: str) -> Profile:
    return PROFILES.get(symbol, DEFAULT_PROFILE)


def gbm_log_return(rng: random.Random, drift: float, vol: float, dt_years: float) -> float:
    """log(S_t+dt / S_t) of GBM: normal with mean (mu - sigma²/2)·dt and sd sigma·sqrt(dt)."""
    if dt_years <= 0:
        return 0.0
    return (drift - 0.5 * vol * vol) * dt_years + vol * math.sqrt(dt_years) * rng.gauss(0.0, 1.0)


def _clipped_gauss(rng: random.Random, sd: float, limit: float) -> float:
    return max(-limit, min(limit, rng.gauss(0.0, sd)))


def price_decimals(price: float) -> int:
    """Decimals a quote at this level is shown with (stocks and crypto 2, FX 5)."""
    if price >= 100:
        return 2
    if price >= 10:
        return 3
    if price >= 1:
        return 5
    # Below 1: keep about 5 significant digits.
    return min(12, 4 - math.floor(math.log10(price)))


def round_price(price: float) -> float:
    """`price` rounded to its level's precision, never rounded down to zero."""
    decimals = price_decimals(price)
    return max(round(price, decimals), 10.0**-decimals)


def round_volume(volume: float) -> float:
    """Whole units for large sizes, fractions for small ones (e.g. 0.0834 BTC)."""
    if volume >= 100:
        return float(round(volume))
    if volume >= 1:
        return round(volume, 2)
    return max(round(volume, 6), 1e-6)


@dataclass
class _Mid:
    profile: Profile
    log_price: float
    last_ms: int | None = None


class Market:
    """Shared mids per symbol and per-source quotes around them."""

    def __init__(self, rng: random.Random, profiles: dict[str, Profile] | None = None) -> None:
        self.rng = rng
        self.profiles = PROFILES if profiles is None else profiles
        self._mids: dict[str, _Mid] = {}
        self._offsets: dict[tuple[str, str], float] = {}

    def _state(self, symbol: str) -> _Mid:
        state = self._mids.get(symbol)
        if state is None:
            profile = self.profiles.get(symbol, DEFAULT_PROFILE)
            state = self._mids[symbol] = _Mid(profile, math.log(profile.level))
        return state

    def advance(self, symbol: str, now_ms: int) -> float:
        """Move `symbol`'s mid to event time `now_ms` and return it (unrounded).

        The first tick starts at the profile's level; time going backwards (or standing still)
        leaves the mid where it is.
        """
        state = self._state(symbol)
        if state.last_ms is not None and now_ms > state.last_ms:
            dt = (now_ms - state.last_ms) / MS_PER_YEAR
            state.log_price += gbm_log_return(self.rng, state.profile.drift, state.profile.vol, dt)
        if state.last_ms is None or now_ms > state.last_ms:
            state.last_ms = now_ms
        return math.exp(state.log_price)

    def mid(self, symbol: str) -> float:
        """The current mid of `symbol` without moving it."""
        return math.exp(self._state(symbol).log_price)

    def source_offset(self, source: str, symbol: str) -> float:
        """The persistent log-offset of `source`'s quotes for `symbol`, drawn on first use."""
        key = (source, symbol)
        offset = self._offsets.get(key)
        if offset is None:
            offset = self._offsets[key] = BP * _clipped_gauss(
                self.rng, SOURCE_OFFSET_BPS, MAX_SOURCE_OFFSET_BPS
            )
        return offset

    def quote(self, source: str, symbol: str, now_ms: int) -> float:
        """`source`'s rounded price for `symbol` at `now_ms`: the mid moved, plus a few bps."""
        mid = self.advance(symbol, now_ms)
        noise = BP * _clipped_gauss(self.rng, QUOTE_NOISE_BPS, MAX_QUOTE_NOISE_BPS)
        return round_price(mid * math.exp(self.source_offset(source, symbol) + noise))

    def volume(self, symbol: str) -> float:
        """A log-normal trade size worth about the symbol's typical notional."""
        state = self._state(symbol)
        mu = math.log(state.profile.notional) - state.log_price
        return round_volume(self.rng.lognormvariate(mu, VOLUME_SIGMA))
