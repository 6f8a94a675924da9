"""Compare a running system's W and candles with the naive reference, side by side.

    python -m tests.tools.compare_reference --api http://127.0.0.1:8000 --symbol BTCUSDT

Reads every stored tick of the symbol (GET /history, up to 10,000), recomputes W and the 1m
candles with tests/reference.py, and prints both. Run it when the feed is paused and the outbox
drained, so the stored set is the set the view was computed from.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from backend.core.ticks import Tick, parse_ts_us
from tests import reference

VIEW_FIELDS = [
    "last_price", "last_ts", "last_event_id", "ticks_total", "sma_10", "vwap_1m", "volume_1m",
    "trades_1m", "high_1m", "low_1m", "open_1m", "change_1m_pct",
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--candles", type=int, default=5, help="how many latest 1m candles to show")
    args = parser.parse_args()
    with httpx.Client(base_url=args.api, timeout=30) as client:
        view: dict[str, Any] = client.get(f"/symbols/{args.symbol}").json()
        rows = client.get(f"/symbols/{args.symbol}/history", params={"limit": 10_000}).json()
        got_candles = client.get(
            f"/symbols/{args.symbol}/candles", params={"interval": "1m"}
        ).json()
    ticks = [
        Tick(
            r["event_id"],
            r["symbol"],
            parse_ts_us(r["ts"]),
            r["price"],
            r["volume"],
            r["source"],
            r["seq"],
            0,
        )
        for r in rows
    ]
    ref = reference.view(ticks)
    mismatches = 0
    print(f"W of {args.symbol} from {len(ticks)} stored ticks")
    print(f"{'field':<16}{'system':>28}{'reference':>28}  ok")
    for name in VIEW_FIELDS:
        ok = view[name] == ref[name] or (
            isinstance(ref[name], float) and reference.close(view[name], ref[name])
        )
        mismatches += not ok
        print(f"{name:<16}{view[name]!s:>28}{ref[name]!s:>28}  {'✓' if ok else '✗'}")
    ref_candles = reference.candles(ticks, 60_000_000)
    print(f"\nlatest {args.candles} 1m candles, O H L C V VWAP (system | reference)")
    for candle in got_candles["candles"][-args.candles :]:
        r = ref_candles.get(parse_ts_us(candle["ts"]))
        if r is None:
            print(f"{candle['ts']}  not in reference")
            mismatches += 1
            continue
        same = all(candle[k] == r[k] for k in ("open", "high", "low", "close", "trades")) and all(
            reference.close(candle[k], r[k]) for k in ("volume", "vwap")
        )
        mismatches += not same
        sys_part = " ".join(
            f"{candle[k]:.6g}" for k in ("open", "high", "low", "close", "volume", "vwap")
        )
        ref_part = " ".join(
            f"{r[k]:.6g}" for k in ("open", "high", "low", "close", "volume", "vwap")
        )
        mark = "✓" if same else "✗"
        print(
            f"{candle['ts']}  {sys_part} n={candle['trades']} | {ref_part} n={r['trades']}  {mark}"
        )
    print(f"\n{'all equal' if not mismatches else f'{mismatches} mismatches'}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
