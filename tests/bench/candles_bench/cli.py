"""Candles benchmark: the rollup-backed `GET /symbols/{symbol}/candles` vs naive aggregation.

    python -m tests.bench.candles_bench [--ticks 10000000] [--symbols 5] [--runs 200] [--json PATH]

Answers the analytics issue ("measure the candles query over 10 million ticks and say how it
scales"). It loads N synthetic ticks into a throw-away database, builds the rollups with the
migration's own backfill SQL, then times, for each interval and for the latest and a random
middle window of `limit=500` buckets:

- ours end to end: the real API (uvicorn subprocess) over HTTP keep-alive;
- ours in SQL: `read_rollup`, the query the endpoint runs;
- the baseline: the same candles aggregated straight from md_ticks;

checks that the endpoint and the baseline agree, and repeats the 1m/latest SQL comparison after
the first 1M ticks to show how both grow with table size. The box is small and noisy, so it
reports medians, p95 and ratios against the baseline measured in the same run, and never asserts
on time. Servers: REDIS_URL / PG_URL when set, else embedded ones in a temp dir on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from backend.core.candles import bucket_start
from backend.core.ticks import us_to_iso
from backend.settings import Settings
from backend.storage.migrate import upgrade
from tests.bench.candles_bench.database import (
    machine_facts,
    table_sizes,
    table_stats,
    throwaway_database,
)
from tests.bench.candles_bench.explain import explain_plans
from tests.bench.candles_bench.loading import LoadStats, build_rollups, describe_load, load_ticks
from tests.bench.candles_bench.measure import measure_sql_scale, measure_windows, windows_for
from tests.bench.candles_bench.queries import DAY_US, INTERVALS, LIMIT, US_PER_S
from tests.bench.candles_bench.report import print_report
from tests.bench.candles_bench.ticks import TickGenerator
from tests.bench.text import fmt_int, say
from tests.support.processes import make_settings, running, settings_env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.candles_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--ticks", type=int, default=10_000_000, help="ticks to load (10M)")
    p.add_argument("--symbols", type=int, default=5, help="symbols they are spread over (5)")
    p.add_argument("--runs", type=int, default=200, help="timed calls per measurement (200)")
    p.add_argument("--days", type=float, default=7.0, help="event-time span of the data (7)")
    p.add_argument("--chunk", type=int, default=500_000, help="rows per COPY (500k)")
    p.add_argument(
        "--scale-at", type=int, default=1_000_000, help="also measure at this many ticks (1M)"
    )
    p.add_argument(
        "--baseline-budget",
        type=float,
        default=10.0,
        help="seconds per window for baseline runs (>= 5 runs, <= --runs)",
    )
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = p.parse_args(argv)
    if args.ticks < 1_000 or args.symbols < 1 or args.runs < 1 or args.chunk < 1:
        p.error("--ticks >= 1000, --symbols, --runs, --chunk >= 1")
    return args


def pick_symbols(settings: Settings, count: int) -> list[str]:
    names = list(dict.fromkeys(settings.symbols))[:count]
    return names + [f"SYM{i:03d}" for i in range(len(names), count)]


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run the benchmark; 0 when the endpoint agreed with the baseline everywhere, else 1."""
    args = parse_args(argv)
    settings = settings or Settings()
    started = time.perf_counter()
    symbols = pick_symbols(settings, args.symbols)
    symbol = symbols[0]
    span_us = int(args.days * DAY_US)
    end_us = bucket_start(time.time_ns() // 1000, 60 * US_PER_S)
    start_us = end_us - span_us
    scale_at = min(args.scale_at, args.ticks // 10)
    per_s = args.ticks / (span_us / US_PER_S)
    say(
        f"{fmt_int(args.ticks)} ticks over {len(symbols)} symbols ({', '.join(symbols)}), "
        f"{args.days:g} days of event time ending {us_to_iso(end_us)}: {per_s:,.1f} ticks/s in "
        f"all, {per_s / len(symbols):,.2f}/s per symbol (~{per_s / len(symbols) * 60:,.0f} per "
        f"1m candle); measuring {symbol}"
    )
    report: dict[str, Any] = {
        "params": {
            "ticks": args.ticks,
            "symbols": symbols,
            "measured_symbol": symbol,
            "runs": args.runs,
            "limit": LIMIT,
            "days": args.days,
            "data_from": us_to_iso(start_us),
            "data_to": us_to_iso(end_us),
            "ticks_per_s": per_s,
            "ticks_per_s_per_symbol": per_s / len(symbols),
            "chunk": args.chunk,
            "seed": args.seed,
            "baseline_budget_s": args.baseline_budget,
        }
    }
    rng = np.random.default_rng(args.seed + 1)
    gen = TickGenerator(symbols, settings.sources, args.ticks, start_us, span_us, args.seed)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-bench-")))
        servers, db_name, db_url = throwaway_database(settings, stack, tmp)
        redis_url, embedded = servers.redis_url, servers.embedded
        report["params"]["database"] = db_name
        say(f"database {db_name}: migrating")
        upgrade(settings.model_copy(update={"pg_url": db_url}))
        facts = machine_facts(db_url, embedded)
        report["machine"] = facts
        say(
            f"{facts['cpu_count']} CPUs, PostgreSQL {facts['pg_server_version']}"
            f"{' (embedded)' if embedded else ''}, "
            + ", ".join(f"{k}={v}" for k, v in facts["pg_settings"].items())
        )

        loads: list[LoadStats] = []
        scaling: list[dict[str, Any]] = []
        if scale_at:
            say(f"loading the first {fmt_int(scale_at)} ticks")
            loads.append(load_ticks(db_url, gen, 0, scale_at, args.chunk))
            say(describe_load(loads[-1], facts)[0])
            small = build_rollups(db_url)
            say(f"rollups for {fmt_int(scale_at)} ticks: {small['wall_s']:.1f} s; measuring")
            window = windows_for("1m", start_us, gen.time_at(scale_at), rng)[0]
            scaling.append(
                asyncio.run(
                    measure_sql_scale(db_url, symbol, window, args.runs, args.baseline_budget)
                )
            )
        say(f"loading ticks {fmt_int(scale_at)}..{fmt_int(args.ticks)}")
        loads.append(load_ticks(db_url, gen, scale_at, args.ticks, args.chunk))
        rows_now = sum(s.rows for s in loads)
        total = LoadStats(
            rows_now,
            sum(s.wall_s for s in loads),
            sum(s.copy_s for s in loads),
            sum(s.build_s for s in loads),
            sum(s.chunks for s in loads),
            sum(s.wal_bytes or 0 for s in loads)
            if all(s.wal_bytes is not None for s in loads)
            else None,
            sum(s.checkpoints or 0 for s in loads)
            if all(s.checkpoints is not None for s in loads)
            else None,
        )
        for line in describe_load(total, facts):
            say(line)
        say(f"building rollups over {fmt_int(rows_now)} ticks (migration 0002 backfill SQL)")
        rollups = build_rollups(db_url)
        say(
            f"rollups: {rollups['wall_s']:.1f} s wall ("
            + ", ".join(f"{t} {s:.1f} s" for t, s in rollups["per_table_s"].items())
            + f", in parallel); VACUUM (ANALYZE) {rollups['vacuum_analyze_s']:.1f} s"
        )
        sizes = table_sizes(db_url)
        report["load"] = {
            "total": {**asdict(total), "rows_per_s": total.rows_per_s},
            "phases": [{**asdict(s), "rows_per_s": s.rows_per_s} for s in loads],
            "rollups": rollups,
            "sizes_bytes": sizes,
        }
        window = windows_for("1m", start_us, end_us, rng)[0]
        scaling.append(
            asyncio.run(measure_sql_scale(db_url, symbol, window, args.runs, args.baseline_budget))
        )
        report["scaling"] = scaling

        windows = [w for i in INTERVALS for w in windows_for(i, start_us, end_us, rng)]
        procs = stack.enter_context(
            running(settings_env(make_settings(redis_url, db_url)), tmp / "logs")
        )
        say("starting the API")
        try:
            procs.start_api()
        except AssertionError:
            print(procs.log("api")[-4000:], file=sys.stderr)
            raise
        say(f"measuring {len(windows)} windows")
        results = asyncio.run(
            measure_windows(db_url, procs.api_url, symbol, windows, args.runs, args.baseline_budget)
        )
        report["results"] = results
        say("EXPLAIN (ANALYZE, BUFFERS)")
        report["explain"] = asyncio.run(explain_plans(db_url, symbol, windows))
        report["pg_table_stats"] = table_stats(db_url)

    ok = all(r["correct"] for r in results)
    report["correctness"] = {
        "ok": ok,
        "checked_windows": len(results),
        "rule": "open/high/low/close/trades identical, volume/vwap within 1e-9 relative",
    }
    report["runtime_s"] = time.perf_counter() - started
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        say(f"wrote {args.json}")
    return 0 if ok else 1
