"""`python -m tests.bench.pipeline.scaling`: how our pipeline scales with processes
(`make bench-scaling`, ≈ 6 min).

For each process layout (`--layouts`: API processes × Dramatiq worker processes, default 1×1,
2×2 and 2×4) it runs the pipeline benchmark's `wrk` mode (wrk -t1 -c32, unpaced, one tick per
request) and its `batch` mode (`--batch-tps`, 500-tick batches, default 50,000/s: above what
one layout takes on this machine, so the accepted rate is its ceiling), one run each of
`--duration` s on fresh private servers, ours only. Per layout and mode it prints accepted,
in-views and in-Postgres ticks/s and the CPU per tick of each tier (api, worker, gateway, Redis,
PostgreSQL; Redis's main thread apart: the one that caps it). Every run checks that each
accepted tick was stored exactly once. A batch row "kept up" when accepted and in-views rates
reached 90 % of the offered rate and Postgres did not fall behind (`kept_up`).

On one machine the processes share its cores with each other, with Redis, PostgreSQL and the
load generator (whose CPU is reported apart): more processes than cores add contention, not
capacity. Across machines sharing Redis and Postgres the same layouts apply per machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.bench.pipeline.bench import Options, run, say

DEFAULT_JSON = Path("artifacts/bench/scaling.json")
KEPT_UP = 0.9
PG_P99_MAX_MS = 5_000.0
TIERS = ("api", "worker", "gateway", "redis-server", "postgres")


def parse_layout(text: str) -> tuple[int, int]:
    api, _, workers = text.partition("x")
    return int(api), int(workers)


def kept_up(cell: dict[str, Any], offered: float) -> bool:
    """Accepted and in-views ≥ 90 % of the offered rate, and Postgres not falling behind: a
    tier that cannot keep up grows a queue for the whole run, so its p99 grows with the run
    (the Postgres rate is not used: it includes the last flush interval, large in short runs)."""
    rates = [cell.get(k) for k in ("accepted_tps", "views_tps")]
    pg_p99 = cell.get("pg_p99")
    return (
        all(r is not None and r >= KEPT_UP * offered for r in rates)
        and pg_p99 is not None
        and pg_p99 <= PG_P99_MAX_MS
    )


def us_per_tick_by_tier(cell: dict[str, Any]) -> dict[str, float | None]:
    """CPU µs per accepted tick per tier (from the summary's s per 1,000 ticks)."""
    by = cell.get("cpu_s_per_1k_by_process") or {}
    return {t: None if by.get(t) is None else by[t] * 1000 for t in TIERS}


def measure(
    layout: tuple[int, int], modes: tuple[str, ...], base: Options, work: Path
) -> list[dict[str, Any]]:
    """One benchmark run (fresh servers) of `layout` in each of `modes`; a row per mode."""
    api, workers = layout
    opts = Options(
        **{
            **base.__dict__,
            "api_procs": api,
            "worker_processes": workers,
            "modes": modes,
            "json_path": work / f"{api}x{workers}.json",
        }
    )
    out = run(opts)
    rows = []
    for mode in modes:
        cell = out["summary"].get("ours", {}).get(mode, {})
        runs = [r for r in out["runs"] if r["mode"] == mode]
        offered = opts.batch_tps if mode == "batch" else None
        row = {
            "api_procs": api,
            "worker_processes": workers,
            "mode": mode,
            "offered_tps": offered,
            "kept_up": kept_up(cell, offered) if offered else None,
            "views_complete": cell.get("views_complete"),
            "exactly_once": bool(runs) and all(r["ok"] for r in runs),
            "feeder_cpu_s": runs[0].get("feeder_cpu_s") if runs else None,
            **{
                k: cell.get(k)
                for k in (
                    "accepted_tps", "views_tps", "pg_tps", "view_p99", "pg_p99",
                    "cpu_s_per_1k", "cpu_s_per_1k_by_process", "redis_us",
                )
            },
            "cpu_us_per_tick": us_per_tick_by_tier(cell),
        }  # fmt: skip
        rows.append(row)
        say(f"{api}×{workers} {mode}: " + line(row))
    return rows


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def line(row: dict[str, Any]) -> str:
    result = {True: "kept up", False: "fell behind", None: "unpaced"}[row["kept_up"]]
    return (
        f"accepted {_f(row['accepted_tps'], ',.0f')}/s, views {_f(row['views_tps'], ',.0f')}/s, "
        f"Postgres {_f(row['pg_tps'], ',.0f')}/s, CPU {_f(row['cpu_s_per_1k'], '.3f')} ms/tick, "
        f"Redis main thread {_f(row['redis_us'], '.1f')} µs/tick → {result}"
    )


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'API×workers':>11} {'mode':<5} {'offered/s':>9} {'accepted/s':>10} {'views/s':>9} "
        f"{'Postgres/s':>10} | CPU µs/tick: {'all':>5} {'api':>5} {'worker':>6} {'gw':>4} "
        f"{'redis':>5} {'pg':>4} {'redis main':>10}  result"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        tiers = r.get("cpu_us_per_tick") or {}
        total = None if r["cpu_s_per_1k"] is None else r["cpu_s_per_1k"] * 1000
        result = {True: "kept up", False: "behind", None: "max rate"}[r["kept_up"]]
        if r.get("views_complete") is False:
            result += ", views incomplete"
        out.append(
            f"{r['api_procs']:>5}×{r['worker_processes']:<5} {r['mode']:<5} "
            f"{_f(r['offered_tps'], ',.0f') if r['offered_tps'] else 'wrk':>9} "
            f"{_f(r['accepted_tps'], ',.0f'):>10} {_f(r['views_tps'], ',.0f'):>9} "
            f"{_f(r['pg_tps'], ',.0f'):>10} |              {_f(total, '.0f'):>5} "
            f"{_f(tiers.get('api'), '.0f'):>5} {_f(tiers.get('worker'), '.0f'):>6} "
            f"{_f(tiers.get('gateway'), '.0f'):>4} {_f(tiers.get('redis-server'), '.0f'):>5} "
            f"{_f(tiers.get('postgres'), '.0f'):>4} {_f(r.get('redis_us'), '.1f'):>10}  {result}"
            + ("" if r["exactly_once"] else "  EXACTLY-ONCE FAILED")
        )
    best: dict[str, dict[str, float]] = {}
    for r in rows:
        key = f"{r['api_procs']}×{r['worker_processes']}"
        best.setdefault(r["mode"], {})[key] = r["accepted_tps"] or 0.0
    out.append("")
    for mode, by_layout in best.items():
        out.append(
            f"{mode} accepted ticks/s per layout: "
            + ", ".join(f"{k}: {v:,.0f}/s" for k, v in by_layout.items())
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.pipeline.scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--layouts", default="1x1,2x2,2x4", help="APIxWORKERS, comma separated")
    p.add_argument("--modes", default="wrk,batch", help="pipeline benchmark modes")
    p.add_argument("--batch-tps", type=float, default=50_000.0)
    p.add_argument("--duration", type=float, default=20.0, help="s of batch sending per run")
    p.add_argument("--wrk-duration", type=float, default=15.0)
    p.add_argument("--worker-threads", type=int, default=4)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, dest="json_path")
    a = p.parse_args(argv)
    layouts = [parse_layout(t) for t in a.layouts.split(",") if t]
    modes = tuple(m for m in a.modes.split(",") if m)
    base = Options(
        runs=1,
        duration=a.duration,
        batch_tps=a.batch_tps,
        wrk_duration=a.wrk_duration,
        worker_threads=a.worker_threads,
        systems=("ours",),
        modes=modes,
        plot=False,
        extra={"dedup_ids": 0},
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tickstream-scaling-") as tmp:
        for layout in layouts:
            rows += measure(layout, modes, base, Path(tmp))
    a.json_path.parent.mkdir(parents=True, exist_ok=True)
    a.json_path.write_text(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "batch_tps": a.batch_tps,
                "duration_s": a.duration,
                "wrk_duration_s": a.wrk_duration,
                "rows": rows,
            },
            indent=1,
        )
    )
    print()
    print(render(rows))
    print(f"\nJSON: {a.json_path}")
    return 0 if all(r["exactly_once"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
