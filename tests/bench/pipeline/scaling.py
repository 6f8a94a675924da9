"""`python -m tests.bench.pipeline.scaling`: how far our pipeline goes, and how it scales with
processes (`make bench-scaling`, ≈ 10 min).

For each process layout (`--layouts`: API processes × Dramatiq worker processes) it offers
rising batch rates (`--rates`, 500-tick batches) from `python -m feeder bench`, one run of
`--duration` s each on fresh private servers (the same run as `make bench`, ours only), and
stops climbing at the first rate the layout did not keep up with. "Kept up": accepted and
in-views ticks/s ≥ 90 % of the offered rate, and ingest→Postgres p99 ≤ 5 s (see `kept_up`).
Every run checks that each accepted tick was stored exactly once.

On one machine the processes share its cores with each other, with Redis, PostgreSQL and the
feeder (whose CPU is reported apart): more processes than cores add contention, not capacity.
Across machines sharing Redis and Postgres the same layouts apply per machine.
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


def climb(
    layout: tuple[int, int], rates: list[float], base: Options, work: Path
) -> list[dict[str, Any]]:
    rows = []
    api, workers = layout
    for rate in rates:
        opts = Options(
            **{
                **base.__dict__,
                "batch_tps": rate,
                "api_procs": api,
                "worker_processes": workers,
                "json_path": work / f"{api}x{workers}-{int(rate)}.json",
            }
        )
        out = run(opts)
        cell = out["summary"].get("ours", {}).get("batch", {})
        row = {
            "api_procs": api,
            "worker_processes": workers,
            "offered_tps": rate,
            "kept_up": kept_up(cell, rate),
            "exactly_once": out["exactly_once"],
            "feeder_cpu_s": out["runs"][0].get("feeder_cpu_s") if out["runs"] else None,
            **{
                k: cell.get(k)
                for k in (
                    "accepted_tps", "views_tps", "pg_tps", "view_p99", "pg_p99",
                    "cpu_s_per_1k", "cpu_s_per_1k_by_process",
                )
            },
        }  # fmt: skip
        rows.append(row)
        say(f"{api}×{workers} @ {rate:,.0f}/s: " + line(row))
        if not row["kept_up"]:
            break
    return rows


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def line(row: dict[str, Any]) -> str:
    return (
        f"accepted {_f(row['accepted_tps'], ',.0f')}/s, views {_f(row['views_tps'], ',.0f')}/s, "
        f"Postgres {_f(row['pg_tps'], ',.0f')}/s, view p99 {_f(row['view_p99'], ',.0f')} ms, "
        f"Postgres p99 {_f(row['pg_p99'], ',.0f')} ms, CPU {_f(row['cpu_s_per_1k'], '.3f')} s/1k"
        f" → {'kept up' if row['kept_up'] else 'fell behind'}"
    )


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'API×workers':>11} {'offered/s':>10} {'accepted/s':>10} {'views/s':>9} "
        f"{'Postgres/s':>10} {'view p99':>9} {'PG p99':>8} {'CPU s/1k':>8} {'feeder s':>8}  result"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(
            f"{r['api_procs']:>5}×{r['worker_processes']:<5} {r['offered_tps']:>10,.0f} "
            f"{_f(r['accepted_tps'], ',.0f'):>10} {_f(r['views_tps'], ',.0f'):>9} "
            f"{_f(r['pg_tps'], ',.0f'):>10} {_f(r['view_p99'], ',.0f'):>9} "
            f"{_f(r['pg_p99'], ',.0f'):>8} {_f(r['cpu_s_per_1k'], '.3f'):>8} "
            f"{_f(r['feeder_cpu_s'], '.1f'):>8}  {'kept up' if r['kept_up'] else 'behind'}"
            + ("" if r["exactly_once"] else "  EXACTLY-ONCE FAILED")
        )
    best: dict[str, float] = {}
    for r in rows:
        if r["kept_up"]:
            key = f"{r['api_procs']}×{r['worker_processes']}"
            best[key] = max(best.get(key, 0.0), r["accepted_tps"] or 0.0)
    out.append("")
    out.append(
        "highest rate kept up, per layout: "
        + (", ".join(f"{k}: {v:,.0f}/s" for k, v in best.items()) or "none")
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.pipeline.scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--layouts", default="1x1,1x2,2x2,1x3", help="APIxWORKERS, comma separated")
    p.add_argument("--rates", default="10000,20000,30000,45000,60000")
    p.add_argument("--duration", type=float, default=20.0, help="s of sending per run")
    p.add_argument("--worker-threads", type=int, default=4)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, dest="json_path")
    a = p.parse_args(argv)
    rates = [float(r) for r in a.rates.split(",") if r]
    layouts = [parse_layout(t) for t in a.layouts.split(",") if t]
    base = Options(
        runs=1,
        duration=a.duration,
        worker_threads=a.worker_threads,
        systems=("ours",),
        modes=("batch",),
        plot=False,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tickstream-scaling-") as tmp:
        for layout in layouts:
            rows += climb(layout, rates, base, Path(tmp))
    a.json_path.parent.mkdir(parents=True, exist_ok=True)
    a.json_path.write_text(
        json.dumps({"cpus": os.cpu_count(), "duration_s": a.duration, "rows": rows}, indent=1)
    )
    print()
    print(render(rows))
    print(f"\nJSON: {a.json_path}")
    return 0 if all(r["exactly_once"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
