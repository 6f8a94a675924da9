"""Medians over runs, ratios ours/baseline, the printed table, the PNG, py-spy summaries."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# metric -> (label in the table, how to read it from one run, format)
METRICS: dict[str, tuple[str, Callable[[dict[str, Any]], float | None], str]] = {
    "accepted_tps": ("accepted ticks/s", lambda r: r["accepted_tps"], "{:,.0f}"),
    "views_tps": ("in views ticks/s", lambda r: r["views"]["tps"], "{:,.0f}"),
    "pg_tps": ("in Postgres ticks/s", lambda r: r["pg_tps"], "{:,.0f}"),
    "ack_p50": ("ack ms p50", lambda r: r["ack_ms"]["p50"], "{:,.1f}"),
    "ack_p95": ("ack ms p95", lambda r: r["ack_ms"]["p95"], "{:,.1f}"),
    "ack_p99": ("ack ms p99", lambda r: r["ack_ms"]["p99"], "{:,.1f}"),
    "view_p50": ("ingest→view ms p50", lambda r: r["view_ms"]["p50"], "{:,.1f}"),
    "view_p95": ("ingest→view ms p95", lambda r: r["view_ms"]["p95"], "{:,.1f}"),
    "view_p99": ("ingest→view ms p99", lambda r: r["view_ms"]["p99"], "{:,.1f}"),
    "pg_p95": ("ingest→Postgres ms p95", lambda r: r["persist_ms"]["p95"], "{:,.1f}"),
    "pg_p99": ("ingest→Postgres ms p99", lambda r: r["persist_ms"]["p99"], "{:,.1f}"),
    "cpu_s_per_1k": ("CPU s / 1,000 ticks", lambda r: r["cpu_s_per_1k"], "{:.3f}"),
    "redis_us": ("Redis CPU µs / tick", lambda r: r.get("redis_us_per_tick"), "{:,.1f}"),
    "rss_total_mb": ("peak RSS MB, all procs", lambda r: sum(r["rss_mb"].values()), "{:,.0f}"),
    "ticks_per_request": ("ticks per request", lambda r: r["ticks_per_request"], "{:,.1f}"),
}
HIGHER_IS_BETTER = {"accepted_tps", "views_tps", "pg_tps"}
OURS_ONLY = {"redis_us"}  # the baseline has no Redis
# Not measured in wrk mode: wrk knows no views or Postgres latencies (its rates are measured).
NOT_IN_WRK = {"view_p50", "view_p95", "view_p99", "pg_p95", "pg_p99"}
MODE_ORDER = ("single", "wrk", "batch")


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """system -> mode -> metric -> median over the runs (and per-process peak RSS medians)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(r["system"], {}).setdefault(r["mode"], {"_runs": []})["_runs"].append(r)
    for modes in out.values():
        for mode, cell in modes.items():
            rs = [r for r in cell.pop("_runs") if "ack_ms" in r]
            summary: dict[str, Any] = {
                key: _median([get(r) for r in rs]) for key, (_, get, _) in METRICS.items()
            }
            labels = sorted({label for r in rs for label in r["rss_mb"]})
            summary["rss_mb"] = {
                label: _median([r["rss_mb"].get(label) for r in rs]) for label in labels
            }
            per_1k = [
                {k: v / r["accepted"] * 1000 for k, v in r["cpu_s_by_process"].items()}
                for r in rs
                if r["accepted"]
            ]
            summary["cpu_s_per_1k_by_process"] = {
                label: _median([c.get(label) for c in per_1k]) for label in (per_1k or [{}])[0]
            }
            commands = sorted({n for r in rs for n in r.get("redis_commands", {})})
            summary["redis_us_per_tick"] = {
                n: _median([r["redis_commands"].get(n, {}).get("us_per_tick") for r in rs])
                for n in commands
            }
            api_acks = [r["api_ack_ms"] for r in rs if r.get("api_ack_ms")]
            summary["api_ack_ms"] = {
                k: _median([a.get(k) for a in api_acks]) for k in ("p50_le_ms", "p99_le_ms")
            }
            summary["non_2xx"] = _median([r.get("non_2xx") for r in rs])
            summary["offered_real_tps"] = _median([r.get("offered_real_tps") for r in rs])
            summary["runs"] = len(rs)
            summary["views_complete"] = all(r["views"]["complete"] for r in rs)
            summary["exactly_once"] = bool(rs) and all(r["ok"] for r in rs)
            modes[mode] = summary
    return out


def ratios(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """mode -> metric -> ours / baseline (of the medians)."""
    out: dict[str, dict[str, float | None]] = {}
    ours, base = summary.get("ours", {}), summary.get("baseline", {})
    for mode in ours.keys() & base.keys():
        out[mode] = {}
        for key in METRICS:
            a, b = ours[mode].get(key), base[mode].get(key)
            out[mode][key] = round(a / b, 3) if a is not None and b else None
    return out


def one_line(r: dict[str, Any]) -> str:
    if "ack_ms" not in r:
        return f"{r['system']:<8} {r['mode']:<6} run {r.get('run')}: FAILED {r.get('error')}"
    views = r["views"]["tps"]
    extra = f"non-2xx {r['non_2xx']}, " if r.get("non_2xx") is not None else ""
    if r.get("redis_us_per_tick") is not None:
        extra += f"Redis {r['redis_us_per_tick']:,.1f} µs/tick, "
    return (
        f"{r['system']:<8} {r['mode']:<6} run {r['run']}: accepted {r['accepted_tps']:,.0f}/s, "
        + extra
        + f"views {views or 0:,.0f}/s, Postgres {r['pg_tps'] or 0:,.0f}/s, ack p95 "
        f"{r['ack_ms']['p95'] or 0:,.1f} ms, view p95 {r['view_ms']['p95'] or 0:,.1f} ms, "
        f"CPU {r['cpu_s_per_1k']} s/1k (feeder {r['feeder_cpu_s']} s), "
        f"{r['ticks_per_request']} ticks/req, exactly once "
        f"{'yes' if r['ok'] else 'NO'} ({r['wall_s']:.0f} s)"
        + (
            "; Redis stalls ms: " + ", ".join(f"{k} {v}" for k, v in r["redis_stalls_ms"].items())
            if r.get("redis_stalls_ms")
            else ""
        )
    )


def _mode_title(mode: str, p: dict[str, Any]) -> str:
    if mode == "single":
        return (
            f"single: offered {p['single_tps']:,.0f} ticks/s for {p['duration_s']:g} s "
            "(POST /ingest/tick)"
        )
    if mode == "wrk":
        w = p.get("wrk", {})
        return (
            f"wrk: wrk -t{w.get('threads')} -c{w.get('connections')} for "
            f"{w.get('duration_s')} s, unpaced, one unique tick per POST /ingest/tick "
            "(ack ms: wrk's histogram over every request)"
        )
    base = (
        f"; baseline offered {p['baseline_batch_tps']:,.0f}/s for "
        f"{p['baseline_batch_duration_s']:g} s"
        if "baseline_batch_tps" in p
        else ""
    )
    return (
        f"batch: ours offered {p['batch_tps']:,.0f} ticks/s for "
        f"{p.get('batch_duration_s', p['duration_s']):g} s{base} "
        f"(POST /ingest/ticks, up to {p['batch_size']} per batch)"
    )


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else spec.format(v)


def render(out: dict[str, Any]) -> str:
    """The side-by-side table: per mode, ours | baseline | ours/baseline."""
    p = out["params"]
    summary, rat = out["summary"], out.get("ratios", {})
    lines = [
        f"Pipeline benchmark: medians of {p['runs']} run(s); "
        f"ours = {p['ours']['api_procs']} API proc + dramatiq --processes "
        f"{p['ours']['worker_processes']} --threads {p['ours']['worker_threads']}; baseline = "
        f"1 uvicorn proc, INSERT+COMMIT per request. {out['machine']['cpus']} CPUs."
    ]
    for mode in MODE_ORDER:
        if not any(mode in s for s in summary.values()):
            continue
        lines += ["", "== " + _mode_title(mode, p)]
        header = f"{'':<26}{'ours':>14}{'baseline':>14}{'ours/base':>11}"
        lines += [header, "-" * len(header)]
        for key, (label, _, spec) in METRICS.items():
            a = summary.get("ours", {}).get(mode, {}).get(key)
            b = summary.get("baseline", {}).get(mode, {}).get(key)
            r = rat.get(mode, {}).get(key)
            lines.append(
                f"{label:<26}{_fmt(a, spec):>14}{_fmt(b, spec):>14}{_fmt(r, '{:.2f}x'):>11}"
            )
        for name in ("ours", "baseline"):
            cell = summary.get(name, {}).get(mode)
            if cell is None:
                continue
            rss = ", ".join(f"{k} {v:,.0f}" for k, v in cell["rss_mb"].items() if v is not None)
            lines.append(f"peak RSS MB {name}: {rss}")
            cpu = ", ".join(
                f"{k} {v:.3f}" for k, v in cell["cpu_s_per_1k_by_process"].items() if v is not None
            )
            lines.append(f"CPU s / 1,000 ticks {name}: {cpu}")
            top = sorted(
                ((n, v) for n, v in cell.get("redis_us_per_tick", {}).items() if v),
                key=lambda kv: -kv[1],
            )[:8]
            api_ack = cell.get("api_ack_ms") or {}
            if api_ack.get("p99_le_ms") is not None:
                lines.append(
                    f"ack measured inside the API {name} (its histogram, received → acked): "
                    f"p50 ≤ {api_ack['p50_le_ms']:g} ms, p99 ≤ {api_ack['p99_le_ms']:g} ms"
                )
            if top:
                lines.append(
                    f"Redis commandstats µs / tick {name} (overlapping: eval/evalsha/exec "
                    "include the commands they ran, also listed by name; the total is the "
                    "main-thread row above): " + ", ".join(f"{n} {v:.2f}" for n, v in top)
                )
            if cell.get("offered_real_tps") is not None:
                lines.append(
                    f"offered for real {name} (ticks / time the feeder took to schedule them): "
                    f"{cell['offered_real_tps']:,.0f}/s"
                )
            if cell.get("non_2xx") is not None:
                lines.append(f"non-2xx answers {name} (median per run): {cell['non_2xx']:,.0f}")
        for name in ("ours", "baseline"):
            cell = summary.get(name, {}).get(mode)
            if cell is None:
                continue
            lines.append(
                f"exactly once ({name}): {'PASS' if cell['exactly_once'] else 'FAIL'} in "
                f"{cell['runs']} run(s); views took in every accepted tick: "
                f"{'yes' if cell['views_complete'] else 'no'}"
            )
    lines += [
        "",
        f"correctness (every accepted tick stored exactly once, all runs): "
        f"{'PASS' if out['exactly_once'] else 'FAIL'}",
    ]
    return "\n".join(lines)


def plot(out: dict[str, Any], path: Path) -> Path:
    """Bars: throughputs (accepted, views, Postgres) and latency percentiles, per system × mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = out["summary"]
    cells = [(s, m) for m in MODE_ORDER for s in ("ours", "baseline") if m in summary.get(s, {})]
    groups = [
        ("throughput, ticks/s", ["accepted_tps", "views_tps", "pg_tps"], False),
        ("ack latency, ms", ["ack_p50", "ack_p95", "ack_p99"], True),
        ("ingest → view latency, ms", ["view_p50", "view_p95", "view_p99"], True),
        ("ingest → Postgres p95 ms / CPU s per 1k ticks", ["pg_p95", "cpu_s_per_1k"], True),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    width = 0.8 / max(1, len(cells))
    for ax, (title, keys, log) in zip(axes.flat, groups, strict=True):
        for i, (system, mode) in enumerate(cells):
            vals = [summary[system][mode].get(k) or 0 for k in keys]
            xs = [j + (i - (len(cells) - 1) / 2) * width for j in range(len(keys))]
            ax.bar(xs, vals, width, label=f"{system} {mode}")
        ax.set_xticks(range(len(keys)), [METRICS[k][0] for k in keys], fontsize=8)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    p = out["params"]
    fig.suptitle(
        f"Tickstream vs naive pipeline: medians of {p['runs']} run(s); offered "
        f"{p['single_tps']:,.0f}/s single, {p['batch_tps']:,.0f}/s batch, wrk unpaced"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def top_functions(raw: str, n: int = 15) -> dict[str, Any]:
    """From py-spy's raw (collapsed) stacks: % of samples per leaf function and per frame."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        leaf[frames[-1]] += c
        for frame in set(frames):
            inclusive[frame] += c
    pct = 100.0 / total if total else 0.0
    return {
        "samples": total,
        "self_pct": [(f, round(c * pct, 1)) for f, c in leaf.most_common(n)],
        "inclusive_pct": [(f, round(c * pct, 1)) for f, c in inclusive.most_common(n * 2)],
    }
