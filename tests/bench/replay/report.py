"""The printed tables: the replay at max (its curve of RSS against ticks replayed, its rate, its
CPU and Redis), and live latency without / with a replay running."""

from __future__ import annotations

from typing import Any

from tests.bench.replay.run import LATENCY_METRICS
from tests.bench.text import fmt_bytes, fmt_int, table


def _num(v: float | None, spec: str = "{:,.1f}") -> str:
    return "-" if v is None else spec.format(v)


def render_max(m: dict[str, Any]) -> list[str]:
    lines = [
        f"== Replay at max over {fmt_int(m['ticks_total'])} stored ticks: {m['state']}"
        + (" (TIMED OUT, cancelled)" if m["timed_out"] else "")
        + f", {fmt_int(m['ticks_applied'])} applied in {m['wall_s']:,.0f} s"
    ]
    rows = [
        [f"{c['pct']} %", fmt_int(c["ticks_applied"]), f"{c['t_s']:,.0f}",
         _num(c["rss_parent_mb"]), _num(c["rss_children_mb"]), _num(c["rss_mb"])]
        for c in m["curve"]
    ]  # fmt: skip
    headers = ["replayed", "ticks applied", "at s", "RSS parent MB", "RSS worker MB",
               "RSS history MB"]  # fmt: skip
    lines.append(table(headers, rows))
    r = m["rss_mb"]
    lines += [
        f"history RSS: {r['first']:,.1f} MB at its first sample, max {r['max']:,.1f} MB, "
        f"{r['last']:,.1f} MB at the end; growth from 10 % to the end "
        f"{r['growth_10pct_to_end']:+,.1f} MB",
        f"rate: median {_num(m['rate_median'], '{:,.0f}')} ticks/s (over 10 s windows), "
        f"overall {_num(m['rate_overall'], '{:,.0f}')} ticks/s (started_at → finished_at)",
        "CPU (cores, mean over the run): "
        + ", ".join(f"{k} {_num(v, '{:.2f}')}" for k, v in m["cpu_cores"].items()),
    ]
    per_1k = m.get("cpu_s_per_1k", {})
    lines.append(
        "CPU s per 1,000 ticks replayed: "
        + ", ".join(f"{k} {_num(v, '{:.3f}')}" for k, v in per_1k.items())
    )
    red = m["redis"]
    lines.append(
        f"Redis kept by the replay: {red['namespace_keys']} keys, "
        f"{fmt_bytes(red['namespace_bytes'])} (MEMORY USAGE) + record "
        f"{fmt_bytes(red['record_bytes'])}; "
        f"server used_memory {fmt_bytes(red['used_memory_before'])} before → "
        f"{fmt_bytes(red['used_memory_after'])} after (shared server)"
    )
    kinds = list(red.get("by_kind", {}).items())[:6]
    if kinds:
        lines.append(
            "  biggest: "
            + ", ".join(f"{k} ({v['keys']} keys) {fmt_bytes(v['bytes'])}" for k, v in kinds)
        )
    if m.get("profile"):
        p = m["profile"]
        parts = ", ".join(f"{k} {v} %" for k, v in p["breakdown_pct"].items())
        lines.append(f"py-spy, the thread driving the replay ({p['samples']} samples, idle "
                     f"included): {parts}")  # fmt: skip
    return lines


def _mode(params: dict[str, Any]) -> str:
    if params["live_mode"] == "single":
        return "POST /ingest/tick, one tick each"
    return f"POST /ingest/ticks, up to 500 per batch or {params['batch_linger_ms']:g} ms"


def render_latency(summary: dict[str, Any], rounds: int, params: dict[str, Any]) -> list[str]:
    lines = [
        f"== Live ingest at {params['live_tps']:,.0f} ticks/s offered ({_mode(params)}), "
        f"{params['phase_s']:g} s per phase, medians of {rounds} round(s): without / with a "
        "replay at max"
    ]
    rows = []
    for key, (label, _) in LATENCY_METRICS.items():
        c = summary[key]
        spec = "{:,.0f}" if key == "accepted_tps" else "{:,.1f}"
        rows.append([label, _num(c["without"], spec), _num(c["with"], spec),
                     _num(c["ratio"], "x{:.2f}")])  # fmt: skip
    lines.append(table(["live", "without replay", "with replay", "with/without"], rows))
    lines.append(
        f"replay meanwhile: median {_num(summary['replay_rate_during'], '{:,.0f}')} ticks/s; "
        f"still running at every phase's end: {'yes' if summary['replay_running_at_end'] else 'NO'}"
    )
    for phase in ("without", "with"):
        cpu = summary["cpu_cores"].get(phase, {})
        lines.append(f"CPU cores {phase}: " + ", ".join(f"{g} {v:.2f}" for g, v in cpu.items()))
    lines.append(f"every live tick stored exactly once: {'yes' if summary['ok'] else 'NO'}")
    return lines


def render(out: dict[str, Any]) -> str:
    lines = [
        f"Replay benchmark: {fmt_int(out['seed']['ticks'])} stored ticks, "
        f"{len(out['seed']['symbols'])} symbols over one day; seeding "
        + (f"{out['seed']['seconds']:.1f} s" if out["seed"]["seconds"] is not None else "reused")
        + f"; history --processes 1 --threads {out['params']['history_threads']}, "
        f"REPLAY_NICE {out['params']['replay_nice']}; {out['machine']['cpus']} CPUs"
    ]
    if out.get("max"):
        lines += ["", *render_max(out["max"])]
    if out.get("latency"):
        lines += ["", *render_latency(out["latency"], len(out["rounds"]), out["params"])]
    return "\n".join(lines)
