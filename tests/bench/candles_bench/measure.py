"""Timing the candles: the windows asked for, the endpoint over HTTP, `read_rollup` in SQL and
the baseline aggregation, as medians and percentiles."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import numpy as np
import psycopg

from backend.core.candles import INTERVALS_S, bucket_start
from backend.core.ticks import us_to_datetime, us_to_iso
from backend.storage.candles_repo import ROLLUP_FOR, read_rollup
from tests.bench.candles_bench.compare import compare
from tests.bench.candles_bench.queries import BASELINE_SQL, LIMIT, US_PER_S, WIDTHS, width_us
from tests.bench.text import say


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {
        "runs": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "min_ms": float(ms.min()),
        "mean_ms": float(ms.mean()),
    }


@dataclass(frozen=True)
class Window:
    interval: str
    kind: str  # "latest": what dashboards hit; "middle": a random window inside the data
    from_us: int
    to_us: int

    @property
    def params(self) -> dict[str, str]:
        return {
            "interval": self.interval,
            "from": str(self.from_us // 1000),
            "to": str(self.to_us // 1000),
            "limit": str(LIMIT),
        }

    def sql_params(self, symbol: str) -> tuple[str, Any, Any]:
        return symbol, us_to_datetime(self.from_us), us_to_datetime(self.to_us)


def windows_for(
    interval: str, start_us: int, end_us: int, rng: np.random.Generator
) -> list[Window]:
    """`limit` buckets ending with the bucket of the newest tick, and `limit` buckets around a
    random point in the middle 60 % of the data (clipped by nothing: wider than the data, it
    simply covers all of it)."""
    width = INTERVALS_S[interval] * US_PER_S
    latest_to = bucket_start(end_us - 1, width) + width
    centre = start_us + int((end_us - start_us) * rng.uniform(0.2, 0.8))
    middle_to = bucket_start(centre, width) + LIMIT // 2 * width
    return [
        Window(interval, "latest", latest_to - LIMIT * width, latest_to),
        Window(interval, "middle", middle_to - LIMIT * width, middle_to),
    ]


async def sample(call: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        await call()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t)
    return out


async def sample_budgeted(
    call: Callable[[], Awaitable[Any]], max_runs: int, min_runs: int, budget_s: float
) -> list[float]:
    """As many runs as fit in `budget_s` (one untimed warm-up sizes it), within [min, max]."""
    t = time.perf_counter()
    await call()
    first = max(time.perf_counter() - t, 1e-4)
    runs = int(min(max_runs, max(min_runs, budget_s // first)))
    return await sample(call, runs, warmup=0)


async def baseline_rows(
    conn: psycopg.AsyncConnection[Any], symbol: str, window: Window
) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        BASELINE_SQL.format(width=WIDTHS[window.interval]), window.sql_params(symbol)
    )
    return await cur.fetchall()


async def ticks_in(conn: psycopg.AsyncConnection[Any], symbol: str, window: Window) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM md_ticks WHERE symbol = %s AND ts >= %s AND ts < %s",
        window.sql_params(symbol),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def measure_sql_scale(
    db_url: str, symbol: str, window: Window, runs: int, budget_s: float
) -> dict[str, Any]:
    """1m/latest in SQL, ours vs baseline, at the current table size."""
    table_name = ROLLUP_FOR[window.interval]
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        rows = await ticks_in(conn, symbol, window)
        ours = await sample(
            lambda: read_rollup(
                conn, table_name, symbol, window.from_us, window.to_us, width_us(window.interval)
            ),
            runs,
        )
        base = await sample_budgeted(lambda: baseline_rows(conn, symbol, window), runs, 5, budget_s)
        cur = await conn.execute(
            "SELECT count(*), pg_table_size('md_ticks') + pg_indexes_size('md_ticks') FROM md_ticks"
        )
        loaded, size = await cur.fetchone()  # type: ignore[misc]
    ours_s, base_s = summarize(ours), summarize(base)
    return {
        "loaded_ticks": int(loaded),
        "md_ticks_bytes": int(size),
        "window": asdict(window),
        "ticks_in_window": rows,
        "ours_sql": ours_s,
        "baseline_sql": base_s,
        "ratio_p50": base_s["p50_ms"] / ours_s["p50_ms"],
        "ratio_p95": base_s["p95_ms"] / ours_s["p95_ms"],
    }


async def measure_windows(
    db_url: str,
    api_url: str,
    symbol: str,
    windows: Sequence[Window],
    runs: int,
    budget_s: float,
) -> list[dict[str, Any]]:
    """For each window: HTTP (ours), read_rollup (ours), baseline, and the correctness check."""
    results = []
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        with httpx.Client(base_url=api_url, timeout=120) as client:
            path = f"/symbols/{symbol}/candles"
            for w in windows:
                say(f"  {w.interval:>3} {w.kind}: HTTP x{runs}, SQL x{runs}, baseline ...")
                rows = await ticks_in(conn, symbol, w)
                last: list[httpx.Response] = []

                async def http_call(w: Window = w, last: list[httpx.Response] = last) -> None:
                    response = client.get(path, params=w.params)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} {w.params}: {response.status_code}")
                    last[:] = [response]

                http = await sample(http_call, runs)
                body = last[0].json()
                table_name = ROLLUP_FOR[w.interval]
                ours = await sample(
                    lambda w=w, t=table_name: read_rollup(
                        conn, t, symbol, w.from_us, w.to_us, width_us(w.interval)
                    ),
                    runs,
                )
                base_result: list[list[tuple[Any, ...]]] = []

                async def base_call(w: Window = w, out: list[Any] = base_result) -> None:
                    out[:] = [await baseline_rows(conn, symbol, w)]

                base = await sample_budgeted(base_call, runs, 5, budget_s)
                problems = compare(body["candles"], base_result[0])
                if body["live"]["pending_ticks_included"]:
                    problems.append("the endpoint merged outbox ticks: not a clean comparison")
                h, o, b = summarize(http), summarize(ours), summarize(base)
                results.append(
                    {
                        "interval": w.interval,
                        "window": w.kind,
                        "from": us_to_iso(w.from_us),
                        "to": us_to_iso(w.to_us),
                        "ticks_in_window": rows,
                        "candles": len(body["candles"]),
                        "rollup_rows_read": len(
                            await read_rollup(
                                conn, table_name, symbol, w.from_us, w.to_us, width_us(w.interval)
                            )
                        ),
                        "http": h,
                        "ours_sql": o,
                        "baseline_sql": b,
                        "ratio_baseline_vs_sql_p50": b["p50_ms"] / o["p50_ms"],
                        "ratio_baseline_vs_sql_p95": b["p95_ms"] / o["p95_ms"],
                        "ratio_baseline_vs_http_p50": b["p50_ms"] / h["p50_ms"],
                        "ratio_baseline_vs_http_p95": b["p95_ms"] / h["p95_ms"],
                        "correct": not problems,
                        "problems": problems[:10],
                    }
                )
    return results
