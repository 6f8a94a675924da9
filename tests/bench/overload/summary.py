"""The samples summarised: memory per process, backlog maxima, answer-time percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def memory_summary(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per process: RSS idle (before any load), start / at stop of the overload, max over the
    overload and drain, end (converged); CPU % of one core during the overload; PSS likewise."""
    labels = list(dict.fromkeys(label for s in samples for label in s["procs"]))
    over = [s for s in samples if s["phase"] == "overload"]
    loaded = [s for s in samples if s["phase"] in ("overload", "drain")]
    out: dict[str, dict[str, Any]] = {}

    def at(s: dict[str, Any] | None, label: str, key: str) -> float | None:
        return s["procs"].get(label, {}).get(key) if s else None

    for label in labels:
        first_over = over[0] if over else None
        last_over = over[-1] if over else None
        cpu_pct = None
        c0, c1 = at(first_over, label, "cpu_s"), at(last_over, label, "cpu_s")
        if c0 is not None and c1 is not None and last_over["t"] > first_over["t"]:  # type: ignore[index]
            cpu_pct = 100 * (c1 - c0) / (last_over["t"] - first_over["t"])  # type: ignore[index]
        row: dict[str, Any] = {"cpu_pct_overload": cpu_pct}
        for key in ("rss", "pss"):
            values = [v for s in loaded if (v := at(s, label, key)) is not None]
            row[key] = {
                "idle": at(samples[0], label, key),
                "start": at(first_over, label, key),
                "max": max(values) if values else None,
                "at_stop": at(last_over, label, key),
                "end": at(samples[-1], label, key),
                "max_all": max(
                    (v for s in samples if (v := at(s, label, key)) is not None), default=None
                ),
            }
        out[label] = row
    return out


def backlog_summary(
    samples: list[dict[str, Any]], max_backlog: int, max_handoff: int, bound: int
) -> dict[str, Any]:
    """Backlog maxima in ticks (GET /stats, and the bench's own hash reads), hand-offs aside."""
    loaded = [s for s in samples if s["phase"] in ("overload", "drain")] or samples

    def top(rows: list[dict[str, Any]], key: str) -> int | None:
        return max((v for s in rows if (v := s[key]) is not None), default=None)

    return {
        "max_backlog_setting": max_backlog,
        "unit": "ticks waiting for calc + ticks waiting for Postgres (an accepted tick counts 2)",
        "max_handoff_ticks": max_handoff,
        "bound": bound,
        "max": top(loaded, "backlog_ticks"),
        "max_redis_read": top(loaded, "backlog_ticks_redis"),
        "stats_unanswered": sum(1 for s in loaded if s["backlog_ticks"] is None),
        "samples": len(loaded),
        "end": samples[-1]["backlog_ticks"],
        "end_redis_read": samples[-1]["backlog_ticks_redis"],
        "max_handoffs": max(s["handoffs"] for s in loaded),
        "max_queue": max(s["queue"] for s in loaded),
        "max_outbox": max(s["outbox"] for s in loaded),
        "max_calc_lag_ticks": max(s["calc_lag"] for s in loaded),
        "max_persist_lag_ticks": max(s["persist_lag"] for s in loaded),
        "max_redis_used_memory": max(s["redis_used_memory"] for s in loaded),
        "end_redis_used_memory": samples[-1]["redis_used_memory"],
        "end_redis_keys": samples[-1]["redis_keys"],
        "max_all_phases": max(
            top(samples, "backlog_ticks") or 0, top(samples, "backlog_ticks_redis") or 0
        ),
    }


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def q(f: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(f * len(ordered)))] if ordered else None

    return {"p50": q(0.5), "p99": q(0.99), "max": ordered[-1] if ordered else None}
