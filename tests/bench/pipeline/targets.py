"""Issue 17's targets beside what a benchmark measured: ours, the baseline, the ratio, met or not.

Where each figure comes from (medians over the runs, `report.summarize`):
- per tick, wrk: accepted ticks/s of the `wrk` mode (wrk -t1 -c32, unpaced); met when ≥ 3,000/s,
  ≥ 2× the baseline's in the same run, and every run stored each acknowledged tick once;
- at 1,000 ticks/s offered (`single`): the feeder's ack p99 and ingest→view p95;
- CPU per tick, whole system: every process of the system (API, workers, gateway, Redis,
  PostgreSQL; not the load generator) per accepted tick, single mode;
- Redis CPU per tick: Redis's main-thread CPU (INFO cpu) per accepted tick. It counts every
  command once, inside scripts and MULTI/EXEC too, and the I/O around them; commandstats cannot
  give a total (a script's or EXEC's time includes the commands it ran, which are also counted
  under their own names), so it is only the breakdown in the per-mode tables;
- batch: offered ≥ 50,000 ticks/s for ≥ 60 s (and the feeder really offered it: it had
  scheduled every tick in time, see `feeder_clock`), and accepted, in-views and in-Postgres rates at
  least `KEEP_UP` of the target (Postgres `KEEP_UP_PG`: its rate includes the last flush after
  the last ack); Redis per tick as above, batch mode;
- Redis bytes per remembered event_id: `tests.bench.dedup_memory.measure(redis_url, count)`
  when that module exists (written apart), in a spare database of the benchmark's own Redis;
  and whether 10,000 ticks/s for DEDUP_TTL at that size fits in 2 GiB.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

WRK_TPS = 3_000.0
WRK_RATIO = 2.0
ACK_P99_MS = 20.0
VIEW_P95_MS = 250.0
CPU_MS_PER_TICK = 0.6
REDIS_US_PER_TICK = 60.0
BATCH_TPS = 50_000.0
BATCH_SECONDS = 60.0
KEEP_UP = 0.98
KEEP_UP_PG = 0.95
BATCH_REDIS_US_PER_TICK = 12.0
DEDUP_BYTES = 40.0
DEDUP_BUDGET_BYTES = 2 * 1024**3
DEDUP_BUDGET_TPS = 10_000
DEDUP_DB = 15  # the spare Redis database the dedup measurement writes in
DEDUP_MODULE = "tests.bench.dedup_memory"


def dedup_memory(redis_url: str, count: int) -> dict[str, Any]:
    """`measure(url, count)` of tests/bench/dedup_memory.py in database DEDUP_DB, or why not."""
    if importlib.util.find_spec(DEDUP_MODULE) is None:
        return {"error": "not measured: tests/bench/dedup_memory.py is missing"}
    url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{DEDUP_DB}"))
    try:
        module = importlib.import_module(DEDUP_MODULE)
        return dict(module.measure(url, count))
    except Exception as exc:  # a benchmark row, not a crash: say what went wrong
        return {"error": f"not measured: {type(exc).__name__}: {exc}"}


def dedup_bytes(measured: dict[str, Any] | None) -> float | None:
    """Bytes per remembered event_id from measure()'s result (`bytes_per_event_id`, or the one
    numeric `bytes_per*` key it has)."""
    if not measured or "error" in measured:
        return None
    if isinstance(measured.get("new"), dict):  # old vs new layouts: ours is the new one
        return dedup_bytes(measured["new"])
    if isinstance(measured.get("bytes_per_event_id"), int | float):
        return float(measured["bytes_per_event_id"])
    for key, value in measured.items():
        if key.startswith("bytes_per") and isinstance(value, int | float):
            return float(value)
    return None


def _cell(out: dict[str, Any], system: str, mode: str) -> dict[str, Any]:
    return dict(out["summary"].get(system, {}).get(mode, {}))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def _row(
    target: str,
    ours: float | None,
    base: float | None,
    spec: str,
    met: Callable[[float], bool],
    why: str = "",
) -> dict[str, Any]:
    return {
        "target": target,
        "ours": ours,
        "baseline": base,
        "ratio": _ratio(ours, base),
        "format": spec,
        "met": None if ours is None else bool(met(ours)),
        "note": why,
    }


def rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets' rows from a benchmark's report (its `summary`, `params`, `dedup_memory`)."""
    p = out["params"]
    result: list[dict[str, Any]] = []

    wrk_o, wrk_b = _cell(out, "ours", "wrk"), _cell(out, "baseline", "wrk")
    if wrk_o or wrk_b:
        a, b = wrk_o.get("accepted_tps"), wrk_b.get("accepted_tps")
        ratio = _ratio(a, b)
        row = _row(
            "wrk -t1 -c32: accepted ticks/s ≥ 3,000 and ≥ 2× baseline",
            a,
            b,
            "{:,.0f}",
            lambda v: v >= WRK_TPS and ratio is not None and ratio >= WRK_RATIO,
        )
        if not wrk_o.get("exactly_once", True):
            row["met"], row["note"] = False, "exactly-once FAILED"
        result.append(row)
        views = wrk_o.get("views_tps")
        result.append(
            _row(
                "wrk: in views ticks/s ≥ 90 % of accepted (views keep up)",
                views,
                wrk_b.get("views_tps"),
                "{:,.0f}",
                lambda v: a is not None and v >= 0.9 * a and bool(wrk_o.get("views_complete")),
            )
        )
    single_o, single_b = _cell(out, "ours", "single"), _cell(out, "baseline", "single")
    if single_o or single_b:
        at = f"at {p['single_tps']:,.0f}/s offered"
        result += [
            _row(
                f"{at}: ack p99 ≤ 20 ms",
                single_o.get("ack_p99"),
                single_b.get("ack_p99"),
                "{:,.1f} ms",
                lambda v: v <= ACK_P99_MS,
            ),
            _row(
                f"{at}: ingest→view p95 ≤ 250 ms",
                single_o.get("view_p95"),
                single_b.get("view_p95"),
                "{:,.1f} ms",
                lambda v: v <= VIEW_P95_MS,
            ),
            _row(
                f"{at}: CPU per tick, whole system ≤ 0.6 ms",
                single_o.get("cpu_s_per_1k"),  # s per 1,000 ticks = ms per tick
                single_b.get("cpu_s_per_1k"),
                "{:.3f} ms",
                lambda v: v <= CPU_MS_PER_TICK,
            ),
            _row(
                f"{at}: Redis CPU per tick ≤ 60 µs",
                single_o.get("redis_us"),
                None,
                "{:,.1f} µs",
                lambda v: v <= REDIS_US_PER_TICK,
            ),
        ]
    batch_o, batch_b = _cell(out, "ours", "batch"), _cell(out, "baseline", "batch")
    if batch_o or batch_b:
        offered, seconds = p["batch_tps"], p["batch_duration_s"]
        real = batch_o.get("offered_real_tps")
        at_load = offered >= BATCH_TPS and seconds >= BATCH_SECONDS
        load = "" if at_load else f"offered {offered:,.0f}/s for {seconds:g} s, not the target"
        if at_load and real is not None and real < KEEP_UP * BATCH_TPS:
            at_load = False
            load = f"the feeder offered only {real:,.0f}/s: the client was the limit"
        for key, what, share in (
            ("accepted_tps", "accepted", KEEP_UP),
            ("views_tps", "in views", KEEP_UP),
            ("pg_tps", "in Postgres", KEEP_UP_PG),
        ):
            result.append(
                _row(
                    f"batch, 50,000/s offered for 60 s: {what} ticks/s ≥ {share:.0%} of it",
                    batch_o.get(key),
                    batch_b.get(key),
                    "{:,.0f}",
                    lambda v, share=share: at_load and v >= share * BATCH_TPS,
                    load,
                )
            )
        result.append(
            _row(
                "batch: Redis CPU per tick ≤ 12 µs",
                batch_o.get("redis_us"),
                None,
                "{:,.1f} µs",
                lambda v: at_load and v <= BATCH_REDIS_US_PER_TICK,
                load,
            )
        )
    measured = out.get("dedup_memory")
    per_id = dedup_bytes(measured)
    old_layout = (measured or {}).get("old")
    before = dedup_bytes(old_layout) if isinstance(old_layout, dict) else None
    why = (measured or {}).get("error", "") if per_id is None else ""
    result.append(
        _row(
            "Redis bytes per remembered event_id ≤ 40 (baseline: one key per event_id)",
            per_id,
            before,
            "{:,.1f} B",
            lambda v: v <= DEDUP_BYTES,
            why or ("not measured (--dedup-ids 0)" if measured is None else ""),
        )
    )
    ttl = p.get("dedup_ttl_s")
    window = per_id * DEDUP_BUDGET_TPS * ttl / 1024**3 if per_id is not None and ttl else None
    result.append(
        _row(
            f"10,000 ticks/s × DEDUP_TTL ({ttl or '?'} s) of event_ids ≤ 2 GiB",
            window,
            None,
            "{:,.2f} GiB",
            lambda v: v * 1024**3 <= DEDUP_BUDGET_BYTES,
        )
    )
    every = out.get("exactly_once")
    result.append(
        {
            "target": "every accepted tick stored exactly once (all runs, all modes)",
            "ours": None,
            "baseline": None,
            "ratio": None,
            "format": "",
            "met": bool(every),
            "note": "",
        }
    )
    return result


def render(target_rows: list[dict[str, Any]], params: dict[str, Any] | None = None) -> str:
    """The `issue 17 targets` table."""
    width = max(len(r["target"]) for r in target_rows) + 2
    head = f"{'target':<{width}}{'ours':>14}{'baseline':>14}{'ratio':>9}  met?"
    lines = ["== issue 17 targets (medians; ratio = ours / baseline)", head, "-" * len(head)]
    for r in target_rows:
        spec = r["format"]
        ours = "-" if r["ours"] is None else spec.format(r["ours"])
        base = "-" if r["baseline"] is None else spec.format(r["baseline"])
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        note = f"  ({r['note']})" if r["note"] else ""
        lines.append(
            f"{r['target']:<{width}}{ours:>14}{base:>14}{ratio:>9}  {_met(r['met'])}{note}"
        )
    if params is not None:
        lines.append(
            f"baseline batch: offered {params['baseline_batch_tps']:,.0f}/s for "
            f"{params['baseline_batch_duration_s']:g} s (its ceiling is far below 50,000/s)"
        )
    return "\n".join(lines)
