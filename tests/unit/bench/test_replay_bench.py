"""Pure parts of the replay benchmark: the RSS curve and rates of the replay at max, and the
medians and ratios of the latency rounds."""

from __future__ import annotations

from typing import Any

from tests.bench.replay.run import (
    profile_breakdown,
    summarize_latency,
    summarize_max,
    window_rates,
)
from tests.bench.replay.sampler import MB, CpuCounters, Sampled


def _sample(t: float, applied: int, rss_mb: float, state: str = "running") -> Sampled:
    cpu = CpuCounters(history=t * 0.8, redis=t * 0.1, postgres_db=t * 0.2, postgres_all=t * 0.5)
    children = int((rss_mb - 40) * MB)
    return Sampled(t=t, state=state, ticks_applied=applied, ticks_total=1_000, rate=0.0,
                   rss_parent=int(40 * MB), rss_children=children, cpu=cpu)  # fmt: skip


def test_the_curve_takes_the_first_sample_past_each_tenth_and_rates_are_per_second() -> None:
    first = _sample(0.0, 0, 100.0)
    # 100 ticks/s for 10 s, then 200 ticks/s; RSS 150 MB, one bump to 160.
    samples = [_sample(float(t), 100 * t, 160.0 if t == 4 else 150.0) for t in range(1, 9)]
    samples += [_sample(9.0, 1_000, 150.0, "done")]
    final = {"state": "done", "ticks_total": 1_000, "ticks_applied": 1_000, "rate": 111.1,
             "started_at": "2026-01-01T00:00:00Z",
             "finished_at": "2026-01-01T00:00:10Z"}  # fmt: skip
    memory = {"keys": 3, "bytes": 1_000, "record_bytes": 10, "by_kind": {}}

    m = summarize_max(samples, first, final, memory, 5_000, 6_000, timed_out=False)

    assert [c["pct"] for c in m["curve"]] == list(range(10, 101, 10))
    assert [c["ticks_applied"] for c in m["curve"]][:3] == [100, 200, 300]
    assert m["curve"][-1]["ticks_applied"] == 1_000
    assert m["curve"][3]["rss_mb"] == 160.0
    assert m["rss_mb"]["max"] == 160.0 and m["rss_mb"]["growth_10pct_to_end"] == 0.0
    # Rates over 10 s windows while running: the run is too short for one.
    assert m["rate_median"] is None
    assert m["rate_overall"] == 100.0  # 1,000 ticks over started_at → finished_at (10 s)
    assert m["cpu_cores"]["history"] == 0.8
    assert m["cpu_s_per_1k"]["history"] == 7.2  # 7.2 s of CPU (0.8 x 9 s) for 1,000 ticks


def _phase(ack50: float, view95: float, ok: bool = True) -> dict[str, Any]:
    return {
        "ok": ok, "accepted_tps": 1_000.0,
        "ack_ms": {"p50": ack50, "p99": ack50 * 2}, "view_ms": {"p50": view95 / 2, "p95": view95},
        "api_ack_ms": {"p50_le_ms": 5.0, "p99_le_ms": 25.0}, "cpu_cores": {"api": 0.1},
    }  # fmt: skip


def test_latency_is_the_median_over_rounds_and_the_ratio_of_the_medians() -> None:
    rounds = [
        {"without": _phase(10, 100), "with": _phase(20, 150) | {"replay": {
            "rate_during": 5_000.0, "running_at_end": True}}},
        {"without": _phase(12, 120), "with": _phase(30, 300) | {"replay": {
            "rate_during": 7_000.0, "running_at_end": True}}},
        {"without": _phase(11, 110), "with": _phase(24, 240) | {"replay": {
            "rate_during": 6_000.0, "running_at_end": True}}},
    ]  # fmt: skip

    s = summarize_latency(rounds)

    assert s["ack_p50"] == {"without": 11, "with": 24, "ratio": 24 / 11}
    assert s["view_p95"]["without"] == 110 and s["view_p95"]["with"] == 240
    assert s["replay_rate_during"] == 6_000.0 and s["replay_running_at_end"]
    assert s["ok"]
    rounds[1]["with"]["replay"]["running_at_end"] = False
    rounds[2]["without"] = _phase(0, 0, ok=False)  # a failed phase counts in no median
    s = summarize_latency(rounds)
    assert not s["replay_running_at_end"] and not s["ok"]
    assert s["ack_p50"]["without"] == 11  # median of 10 and 12


def test_window_rates_span_at_least_the_window() -> None:
    # A group of 5,000 ticks every 2 s: per-second differences would be 0 or 5,000.
    samples = [_sample(float(t), 5_000 * (t // 2), 150.0) for t in range(0, 31)]
    rates = window_rates(samples, 10.0)
    assert len(rates) == 21  # every sample with another 10 s later
    assert all(2_000 <= r <= 3_000 for r in rates), rates


def test_a_cancelled_run_is_cut_in_tenths_of_what_it_replayed() -> None:
    first = _sample(0.0, 0, 100.0)
    samples = [_sample(float(t), 50 * t, 150.0) for t in range(1, 11)]
    final = {"state": "cancelled", "ticks_total": 1_000, "ticks_applied": 500, "rate": 50.0,
             "started_at": None, "finished_at": None}  # fmt: skip
    memory = {"keys": 0, "bytes": 0, "record_bytes": 0, "by_kind": {}}
    m = summarize_max(samples, first, final, memory, 0, 0, timed_out=False)
    assert [c["ticks_applied"] for c in m["curve"]] == list(range(50, 501, 50))


def test_the_profile_is_split_by_part_of_the_driver_and_by_waiting_or_running() -> None:
    raw = "\n".join([
        "run_slice;_drive;ticks_after;_symbol_ticks;Connection.wait (psycopg/connection.py:495) 30",
        "run_slice;_drive;ticks_after;_symbol_ticks;_fetch_gen 10",
        "run_slice;_apply_group;apply_batch;transact;read_from_socket (redis/hiredis.py:211) 20",
        "run_slice;_apply_group;apply_batch;merge 30",
        "run_slice;commit;ReplayProgressStore._merged_candles;from_ticks 10",
    ])  # fmt: skip
    assert profile_breakdown(raw) == {
        "read md_ticks: waiting on PostgreSQL": 30.0,
        "calc apply_batch: CPU": 30.0,
        "calc apply_batch: waiting on Redis": 20.0,
        "read md_ticks: CPU": 10.0,
        "candles merge (commit): CPU": 10.0,
    }
