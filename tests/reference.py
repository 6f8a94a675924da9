"""Naive reference implementations, written straight from the definitions in the analytics issue.

Deliberately simple and slow: the real core (backend/core) must agree with these on any tick set.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from backend.core.ticks import Tick, us_to_iso

WINDOW_US = 60_000_000


def unique(ticks: list[Tick]) -> list[Tick]:
    """First write wins per event_id; ordered by (ts, event_id)."""
    seen: dict[str, Tick] = {}
    for t in ticks:
        seen.setdefault(t.event_id, t)
    return sorted(seen.values(), key=lambda t: (t.ts_us, t.event_id))


def view(ticks: list[Tick]) -> dict[str, Any]:
    ordered = unique(ticks)
    last = ordered[-1]
    window = [t for t in ordered if last.ts_us - WINDOW_US < t.ts_us <= last.ts_us]
    latest = ordered[-10:][::-1]
    vol = sum(t.volume for t in window)
    return {
        "last_price": last.price,
        "last_ts": us_to_iso(last.ts_us),
        "last_event_id": last.event_id,
        "last_source": last.source,
        "ticks_total": len(ordered),
        "sma_10": sum(t.price for t in latest) / len(latest),
        "last_10": [t.event_id for t in latest],
        "vwap_1m": (sum(t.price * t.volume for t in window) / vol) if vol > 0 else None,
        "volume_1m": vol,
        "trades_1m": len(window),
        "high_1m": max(t.price for t in window),
        "low_1m": min(t.price for t in window),
        "open_1m": window[0].price,
        "change_1m_pct": (last.price - window[0].price) / window[0].price * 100,
    }


def candles(ticks: list[Tick], width_us: int) -> dict[int, dict[str, Any]]:
    groups: dict[int, list[Tick]] = {}
    for t in unique(ticks):
        groups.setdefault(t.ts_us - t.ts_us % width_us, []).append(t)
    out = {}
    for bucket, group in groups.items():
        vol = sum(Fraction(t.volume) for t in group)
        pv = sum(Fraction(t.price) * Fraction(t.volume) for t in group)
        out[bucket] = {
            "open": group[0].price,
            "close": group[-1].price,
            "high": max(t.price for t in group),
            "low": min(t.price for t in group),
            "trades": len(group),
            "volume": float(vol),
            "vwap": float(pv / vol) if vol else None,
        }
    return out


def gaps(seqs: set[int]) -> list[tuple[int, int]]:
    """Maximal runs of missing numbers between the smallest and largest seen."""
    if not seqs:
        return []
    runs: list[tuple[int, int]] = []
    for n in range(min(seqs), max(seqs) + 1):
        if n in seqs:
            continue
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def close(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rel * max(1.0, abs(b))
