"""Exactness through the real system: the same seeded tick set, sent in two different orders
with duplicates, to API + 2 worker processes, once with calc in one step and once with
CALC_SPLIT → identical views, candles and gaps, equal to the naive reference; and candles read
while the ticks are still in the outbox equal the candles after they reached Postgres."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from backend.core.ticks import Tick, parse_ts_us
from backend.settings import Settings
from tests import reference
from tests.support.processes import AUTH, make_settings, running, settings_env
from tests.support.verify import stored_count
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT", "XAUUSD"]
SOURCES = ["binance", "kraken"]
MINUTE_US = 60_000_000
COMPARED_VIEW_FIELDS = [
    "last_price", "last_ts", "last_event_id", "last_source", "ticks_total", "sma_10", "vwap_1m",
    "volume_1m", "trades_1m", "high_1m", "low_1m", "open_1m", "change_1m_pct", "gaps_open",
]  # fmt: skip


def seeded_stream(seed: int, n: int) -> list[dict[str, Any]]:
    """n unique ticks over ~12 minutes ending 2 minutes ago; ~3 % of seqs never sent (gaps)."""
    rng = random.Random(seed)
    end_ms = (int(time.time() * 1000) // 60_000 - 2) * 60_000
    start_ms = end_ms - 12 * 60_000
    seq = {(s, sym): 0 for s in SOURCES for sym in SYMBOLS}
    price = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "XAUUSD": 2_400.0}
    ticks = []
    for i in range(n):
        sym, src = rng.choice(SYMBOLS), rng.choice(SOURCES)
        seq[(src, sym)] += 1
        price[sym] = round(price[sym] * (1 + rng.gauss(0, 0.0005)), 2)
        tick = {
            "symbol": sym,
            "price": price[sym],
            "volume": round(rng.lognormvariate(0, 1), 4),
            "source": src,
            "ts": start_ms + rng.randint(0, end_ms - start_ms),  # ties happen: ms resolution
            "event_id": f"x{seed}-{i:05d}",
            "seq": seq[(src, sym)],
        }
        if rng.random() > 0.03:
            ticks.append(tick)
    return ticks


def as_tick(body: dict[str, Any]) -> Tick:
    return Tick(
        body["event_id"], body["symbol"], parse_ts_us(body["ts"]), float(body["price"]),
        float(body["volume"]), body["source"], body["seq"], 0,
    )  # fmt: skip


def send(api_url: str, ticks: list[dict[str, Any]], rng: random.Random) -> None:
    """In random-sized batches, with ~15 % resent (duplicates), some as single posts."""
    stream = ticks + rng.sample(ticks, k=len(ticks) * 15 // 100)
    with httpx.Client(base_url=api_url, auth=AUTH, timeout=30) as client:
        i = 0
        while i < len(stream):
            size = rng.choice([1, 1, 7, 50, 200])
            chunk = stream[i : i + size]
            if size == 1:
                r = client.post("/ingest/tick", json=chunk[0])
                assert r.status_code == 200, r.text
            else:
                r = client.post("/ingest/ticks", json=chunk)
                assert r.status_code == 200 and not r.json()["rejected"], r.text
            i += size


def snapshot(api_url: str, window: tuple[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for sym in SYMBOLS:
            view = client.get(f"/symbols/{sym}").json()
            out[f"view:{sym}"] = {k: view[k] for k in COMPARED_VIEW_FIELDS}
            out[f"last10:{sym}"] = [e["event_id"] for e in view["last_10"]]
            for interval in ("1m", "5m", "1h"):
                r = client.get(
                    f"/symbols/{sym}/candles",
                    params={"interval": interval, "from": window[0], "to": window[1]},
                )
                assert r.status_code == 200, r.text
                out[f"candles:{sym}:{interval}"] = r.json()["candles"]
            gaps = client.get(f"/symbols/{sym}/gaps").json()
            out[f"gaps:{sym}"] = [(g["source"], g["from_seq"], g["to_seq"]) for g in gaps["open"]]
    return out


def run(
    settings: Settings, log_dir: Path, ticks: list[dict[str, Any]], order_seed: int
) -> dict[str, Any]:
    rng = random.Random(order_seed)
    shuffled = ticks[:]
    rng.shuffle(shuffled)
    window = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
    with running(settings_env(settings), log_dir) as procs:
        procs.start_api()
        send(procs.api_url, shuffled, rng)
        # Nothing is flushed yet (no worker): candles come from the outbox alone.
        live_only = snapshot_candles(procs.api_url, window)
        procs.start_worker(processes=2, threads=2)
        wait_for(lambda: stored_count(settings.pg_url) == len(ticks), 60, what="all rows stored")
        with httpx.Client(base_url=procs.api_url, timeout=10) as client:
            for sym in SYMBOLS:
                n = sum(1 for t in ticks if t["symbol"] == sym)
                wait_for(
                    lambda s=sym, n=n: client.get(f"/symbols/{s}").json().get("ticks_total") == n,
                    60, what=f"view of {sym}",
                )  # fmt: skip
        snap = snapshot(procs.api_url, window)
    assert live_only == {k: v for k, v in snap.items() if k.startswith("candles:")}
    return snap


def snapshot_candles(api_url: str, window: tuple[str, str]) -> dict[str, Any]:
    out = {}
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for sym in SYMBOLS:
            for interval in ("1m", "5m", "1h"):
                r = client.get(
                    f"/symbols/{sym}/candles",
                    params={"interval": interval, "from": window[0], "to": window[1]},
                )
                assert r.status_code == 200 and r.json()["live"]["complete"], r.text
                out[f"candles:{sym}:{interval}"] = r.json()["candles"]
    return out


def test_two_orders_and_calc_split_give_identical_results_equal_to_reference(
    settings: Settings, tmp_path: Path
):
    ticks = seeded_stream(seed=42, n=1500)
    first = run(settings, tmp_path / "a", ticks, order_seed=1)

    with psycopg.connect(settings.pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE md_ticks, md_candles_1m, md_candles_1h")
    split = make_settings(settings.effective_redis_url, settings.pg_url, calc_split=True)
    second = run(split, tmp_path / "b", ticks, order_seed=2)

    assert second == first
    assert any(first[f"gaps:{sym}"] for sym in SYMBOLS)  # the stream did leave gaps
    assert all(len(first[f"candles:{sym}:1m"]) >= 10 for sym in SYMBOLS)

    # ...and both equal the naive reference.
    all_ticks = [as_tick(t) for t in ticks]
    for sym in SYMBOLS:
        mine = [t for t in all_ticks if t.symbol == sym]
        ref = reference.view(mine)
        got = first[f"view:{sym}"]
        for name in ("last_price", "last_ts", "last_event_id", "last_source", "ticks_total",
                     "trades_1m", "high_1m", "low_1m", "open_1m"):  # fmt: skip
            assert got[name] == ref[name], (sym, name)
        for name in ("sma_10", "vwap_1m", "volume_1m", "change_1m_pct"):
            assert reference.close(got[name], ref[name]), (sym, name)
        assert first[f"last10:{sym}"] == ref["last_10"]
        expected_gaps = sorted(
            (src, lo, hi)
            for src in SOURCES
            for lo, hi in reference.gaps(
                {t.seq for t in mine if t.source == src and t.seq is not None}
            )
        )
        assert first[f"gaps:{sym}"] == expected_gaps
        assert got["gaps_open"] == len(expected_gaps)
        for interval, width in (("1m", MINUTE_US), ("5m", 5 * MINUTE_US), ("1h", 60 * MINUTE_US)):
            ref_candles = reference.candles(mine, width)
            got_candles = first[f"candles:{sym}:{interval}"]
            assert [parse_ts_us(c["ts"]) for c in got_candles] == sorted(ref_candles)
            for candle in got_candles:
                r = ref_candles[parse_ts_us(candle["ts"])]
                for name in ("open", "close", "high", "low", "trades"):
                    assert candle[name] == r[name], (sym, interval, name)
                assert reference.close(candle["volume"], r["volume"])
                assert reference.close(candle["vwap"], r["vwap"])
