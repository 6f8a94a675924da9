"""Candles: identical for any split of the same tick set, and equal to a naive reference."""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.core.candles import Candle, combine, from_ticks
from backend.core.ticks import Tick
from tests import reference

T0 = 1_795_000_000_000_000  # a multiple of 1 h in µs? not needed: buckets are floor-aligned
MINUTE = 60_000_000


def mk(i: int, ts: int, price: float, volume: float) -> Tick:
    return Tick(f"e{i:04d}", "AAA", T0 + ts, price, volume, "s", None, T0)


ticks_strategy = st.lists(
    st.tuples(
        st.integers(0, 20 * MINUTE),
        st.floats(0.01, 1e6, allow_nan=False, allow_infinity=False),
        st.one_of(st.just(0.0), st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(raw=ticks_strategy, seed=st.integers(0, 2**32))
def test_any_split_gives_identical_candles(raw, seed):
    ticks = [mk(i, ts, p, v) for i, (ts, p, v) in enumerate(raw)]
    rng = random.Random(seed)
    whole = from_ticks(ticks, 5 * MINUTE)
    shuffled = ticks[:]
    rng.shuffle(shuffled)
    pieces: list[Candle] = []
    while shuffled:  # like rollup rows of different flushes plus live ticks
        cut = rng.randint(1, len(shuffled))
        pieces.extend(from_ticks(shuffled[:cut], MINUTE).values())
        shuffled = shuffled[cut:]
    assert combine(pieces, 5 * MINUTE) == whole


@settings(max_examples=200, deadline=None)
@given(raw=ticks_strategy)
def test_candles_match_reference(raw):
    ticks = [mk(i, ts, p, v) for i, (ts, p, v) in enumerate(raw)]
    ref = reference.candles(ticks, MINUTE)
    got = {b: c.to_json() for b, c in from_ticks(ticks, MINUTE).items()}
    assert set(got) == set(ref)
    for bucket, r in ref.items():
        g = got[bucket]
        for name in ("open", "close", "high", "low", "trades"):
            assert g[name] == r[name], name
        assert abs(g["volume"] - r["volume"]) <= 1e-9 * max(1.0, r["volume"])
        if r["vwap"] is None:
            assert g["vwap"] is None
        else:
            assert abs(g["vwap"] - r["vwap"]) <= 1e-9 * r["vwap"]


def test_ties_break_by_event_id():
    a, b = mk(2, 0, 1.0, 1.0), mk(1, 0, 2.0, 1.0)  # same ts: e0001 opens, e0002 closes
    [candle] = from_ticks([a, b], MINUTE).values()
    assert candle.open_price == 2.0 and candle.close_price == 1.0
    assert candle.volume == Decimal(2)
