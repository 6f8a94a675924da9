"""The correctness check: the endpoint's candles against the naive aggregation's."""

from __future__ import annotations

from typing import Any

from backend.core.ticks import datetime_to_us, parse_ts_us, us_to_iso
from tests.bench.candles_bench.queries import REL_TOL


def compare(api_candles: list[dict[str, Any]], base: list[tuple[Any, ...]]) -> list[str]:
    """Differences between the endpoint's candles and the baseline's (empty: they agree).

    Open/high/low/close/trades must be identical; volume and vwap within 1e-9 relative (the
    baseline sums float8, the rollups exact NUMERIC).
    """
    problems: list[str] = []
    ours = {parse_ts_us(c["ts"]): c for c in api_candles}
    theirs = {datetime_to_us(r[0]): r for r in base}
    if ours.keys() != theirs.keys():
        only_ours = [us_to_iso(b) for b in sorted(ours.keys() - theirs.keys())[:3]]
        only_base = [us_to_iso(b) for b in sorted(theirs.keys() - ours.keys())[:3]]
        problems.append(
            f"buckets differ: {len(ours)} vs {len(theirs)}; "
            f"only endpoint {only_ours}, only baseline {only_base}"
        )

    def close(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return a is b
        return abs(a - b) <= REL_TOL * max(abs(a), abs(b))

    for bucket in sorted(ours.keys() & theirs.keys()):
        c = ours[bucket]
        _b, open_, high, low, close_, volume, vwap, trades = theirs[bucket]
        expected = {"open": open_, "high": high, "low": low, "close": close_, "trades": trades}
        for key, value in expected.items():
            if c[key] != value:
                problems.append(f"{us_to_iso(bucket)} {key}: endpoint {c[key]!r} != {value!r}")
        for key, value in (("volume", volume), ("vwap", vwap)):
            if not close(c[key], value):
                problems.append(f"{us_to_iso(bucket)} {key}: endpoint {c[key]!r} vs {value!r}")
    return problems
