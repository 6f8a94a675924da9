"""The printed report: latency per window, scaling with table size, plans and the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.bench.candles_bench.queries import LIMIT
from tests.bench.text import fmt_bytes, fmt_int, fmt_ms, fmt_ratio, table

PRINTED_PLANS = ("1m_latest", "1h_latest")  # the JSON has every latest window's plans


def _ours_vs_raw(label: str) -> list[str]:
    """Headers of the columns `_ours_vs_raw_cells` fills: ours, then the raw aggregation."""
    return [f"{label} p50", "p95", "raw p50", "p95", "runs"]


def _ours_vs_raw_cells(ours: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    return [
        *(fmt_ms(ours[k]) for k in ("p50_ms", "p95_ms")),
        *(fmt_ms(raw[k]) for k in ("p50_ms", "p95_ms")),
        str(raw["runs"]),
    ]


def results_table(results: Sequence[dict[str, Any]]) -> str:
    headers = ["interval/window", "ticks in win", "candles", "HTTP p50", "p95", "p99"]
    headers += [*_ours_vs_raw("SQL"), "raw/SQL p50", "raw/HTTP p50", "check"]
    rows = []
    for r in results:
        h = r["http"]
        rows.append(
            [
                f"{r['interval']} {r['window']}",
                fmt_int(r["ticks_in_window"]),
                str(r["candles"]),
                *(fmt_ms(h[k]) for k in ("p50_ms", "p95_ms", "p99_ms")),
                *_ours_vs_raw_cells(r["ours_sql"], r["baseline_sql"]),
                fmt_ratio(r["ratio_baseline_vs_sql_p50"]),
                fmt_ratio(r["ratio_baseline_vs_http_p50"]),
                "OK" if r["correct"] else "MISMATCH",
            ]
        )
    return table(headers, rows)


def scaling_table(points: Sequence[dict[str, Any]]) -> str:
    headers = ["loaded ticks", "md_ticks+idx", "ticks in win", *_ours_vs_raw("rollup SQL")]
    rows = [
        [
            fmt_int(p["loaded_ticks"]),
            fmt_bytes(p["md_ticks_bytes"]),
            fmt_int(p["ticks_in_window"]),
            *_ours_vs_raw_cells(p["ours_sql"], p["baseline_sql"]),
            fmt_ratio(p["ratio_p50"]),
        ]
        for p in points
    ]
    return table([*headers, "raw/rollup p50"], rows)


def scaling_summary(points: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]) -> str:
    lines = []
    if len(points) == 2:
        small, big = points
        growth = big["loaded_ticks"] / small["loaded_ticks"]
        lines.append(
            f"table x{growth:.0f} ({fmt_int(small['loaded_ticks'])} -> "
            f"{fmt_int(big['loaded_ticks'])} ticks, same density): rollup p50 "
            f"x{big['ours_sql']['p50_ms'] / small['ours_sql']['p50_ms']:.2f}, raw p50 "
            f"x{big['baseline_sql']['p50_ms'] / small['baseline_sql']['p50_ms']:.2f} "
            f"(ticks in the 1m window {fmt_int(small['ticks_in_window'])} -> "
            f"{fmt_int(big['ticks_in_window'])})"
        )
    latest = [r for r in results if r["window"] == "latest"]
    if latest:
        per_100k = [
            f"{r['interval']} {r['baseline_sql']['p50_ms'] / r['ticks_in_window'] * 1e5:.0f} ms"
            for r in latest
            if r["ticks_in_window"]
        ]
        lines.append(
            "raw aggregation per 100k ticks in the window (latest): " + ", ".join(per_100k)
        )
        lines.append(
            "rollup SQL p50 over intervals (latest): "
            + ", ".join(
                f"{r['interval']} {fmt_ms(r['ours_sql']['p50_ms'])} ms "
                f"({r['rollup_rows_read']} rows)"
                for r in latest
            )
        )
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    p, m = report["params"], report["machine"]
    load, rollups = report["load"]["total"], report["load"]["rollups"]
    sizes = report["load"]["sizes_bytes"]
    print()
    print(
        f"=== candles benchmark: {fmt_int(p['ticks'])} ticks, {len(p['symbols'])} symbols, "
        f"{p['days']:g} days ({p['ticks_per_s']:,.1f} ticks/s, "
        f"{p['ticks_per_s_per_symbol']:,.2f}/s per symbol); symbol {p['measured_symbol']}, "
        f"limit={LIMIT} ==="
    )
    print(
        f"machine: {m['cpu_count']} CPUs; PostgreSQL {m['pg_server_version']}"
        f"{' (embedded)' if m['pg_embedded'] else ''}; "
        + ", ".join(f"{k}={v}" for k, v in m["pg_settings"].items())
    )
    print(
        f"load: {fmt_int(load['rows'])} rows in {load['wall_s']:.1f} s = "
        f"{fmt_int(load['rows_per_s'])} rows/s; rollups {rollups['wall_s']:.1f} s "
        f"({', '.join(f'{t} {s:.1f} s' for t, s in rollups['per_table_s'].items())}); "
        f"VACUUM (ANALYZE) {rollups['vacuum_analyze_s']:.1f} s"
    )
    print(
        "sizes: "
        + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in sizes.items())
        + "; rollup rows "
        + ", ".join(f"{k} {fmt_int(v)}" for k, v in rollups["rows"].items())
    )
    print()
    print(
        "latency in ms. HTTP = GET /symbols/{s}/candles through uvicorn (keep-alive). SQL = "
        "read_rollup (query + decoding the rows into Candles, in this process). raw = the "
        "baseline aggregation over md_ticks (runs: as many as fit in --baseline-budget). "
        "Ratios = raw p50 / ours p50."
    )
    print(results_table(report["results"]))
    print()
    print("scaling (1m latest window, SQL only):")
    print(scaling_table(report["scaling"]))
    print(scaling_summary(report["scaling"], report["results"]))
    print()
    for name, plans in report["explain"].items():
        if name not in PRINTED_PLANS:
            continue
        for who, plan in plans.items():
            print(f"--- EXPLAIN (ANALYZE, BUFFERS) {name}: {who}")
            print(plan)
    print()
    c = report["correctness"]
    print(
        f"correctness ({c['checked_windows']} windows; {c['rule']}): "
        + ("OK" if c["ok"] else "MISMATCH")
    )
    for r in report["results"]:
        for problem in r["problems"]:
            print(f"  {r['interval']} {r['window']}: {problem}")
    print(f"runtime: {report['runtime_s']:.0f} s")
