"""Sample assembly (the ledger's gauges → the /stats contract) and the in-memory reject counts."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import cast

import orjson
import pytest
from redis.asyncio import Redis

from backend.api.routes.stats import StatsCounters, StatsGauges, StatsHistory, StatsSample
from backend.api.stats_sampler import StatsSampler, build_sample, take_sample
from backend.bus.keys import Keys
from backend.bus.ledger import Gauges, LedgerReader, shape_gauges
from backend.bus.samples import SamplesStore
from backend.core.ticks import us_to_iso
from backend.settings import Settings
from tests.support.simulated_time import SimulatedTime

NOW_US = 1_795_271_400_000_000
BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]
COUNTERS = {
    "ingest_accepted", "ingest_duplicate", "ingest_conflict", "ingest_shed", "calc_batches",
    "calc_ticks", "late_ticks", "gaps_opened", "gaps_closed", "rows_written", "flush_count",
    "flush_ticks_sum", "flush_seconds_sum",
    "alerts_fired", "alerts_test_fired", "alerts_observations", "alerts_rules_checked",
    "alerts_delivered", "alerts_delivery_retries", "alerts_delivery_failed", "alerts_delivery_dead",
}  # fmt: skip
GAUGES = {
    "backlog_ticks", "queue_depth", "calc_b_depth", "dead_letters", "outbox_entries",
    "outbox_pending", "workers", "feeders_alive", "feeders_target_tps", "feeders_achieved_tps",
    "alert_evaluations_waiting", "alert_deliveries_waiting", "alert_history_entries",
}  # fmt: skip
DELIVERY_BOUNDS = [*BOUNDS, "30.0", "60.0", "300.0", "+Inf"]


def readings(
    *,
    stats: dict[bytes, bytes] | None = None,
    queue_depth: int = 0,
    calc_b_depth: int = 0,
    dead_letters: tuple[int, int] = (0, 0),  # calc queue, calc-b queue
    outbox_entries: int = 0,
    outbox_pending: int = 0,
    workers: int = 0,
    feeders: dict[bytes, bytes] | None = None,
    alert_queues: tuple[int, int, int, int] = (0, 0, 0, 0),  # evaluate, deliver, retry, history
) -> Gauges:
    """Gauges shaped from raw Redis answers, as `ledger.read_gauges` shapes them."""
    answers = [
        stats or {}, queue_depth, calc_b_depth, *dead_letters, outbox_entries, workers,
        feeders or {}, *alert_queues,
    ]  # fmt: skip
    return shape_gauges(answers, outbox_pending)


def feeder(seconds_ago: float, target: object = 10.0, achieved: object = 9.5) -> bytes:
    received = us_to_iso(NOW_US - int(seconds_ago * 1_000_000))
    return orjson.dumps(
        {"feeder_id": "f", "target_tps": target, "achieved_tps": achieved, "received_at": received}
    )


def test_an_empty_pipeline_gives_the_full_contract_with_zeros():
    sample = build_sample(readings(), NOW_US)
    assert set(sample) == {
        "ts", "ts_us", "counters", "rejected", "flush_seconds_le", "view_latency_le",
        "alert_delivery_latency_le", "gauges",
    }  # fmt: skip
    assert sample["ts_us"] == NOW_US
    ts = datetime.fromisoformat(sample["ts"])
    assert ts.tzinfo is not None and ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert int(ts.timestamp() * 1_000_000) == NOW_US
    assert set(sample["counters"]) == COUNTERS
    assert all(v == 0 for v in sample["counters"].values())
    assert type(sample["counters"]["ingest_accepted"]) is int
    assert type(sample["counters"]["flush_seconds_sum"]) is float
    assert sample["rejected"] == {}
    assert sample["flush_seconds_le"] == dict.fromkeys(BOUNDS, 0)
    assert sample["view_latency_le"] == dict.fromkeys([*BOUNDS, "+Inf"], 0)
    assert list(sample["alert_delivery_latency_le"]) == DELIVERY_BOUNDS
    assert all(v == 0 for v in sample["alert_delivery_latency_le"].values())
    assert set(sample["gauges"]) == GAUGES
    assert all(v == 0 for v in sample["gauges"].values())


def test_the_route_model_is_the_sample_field_for_field():
    """/stats validates the sample against `StatsSample`: every field the sampler writes is in
    the model (a renamed one fails here, not in production), and nothing is dropped on the way."""
    raw = {
        b"alerts_fired": b"3", b"alerts_delivery_dead": b"1",
        b"alert_delivery_latency_le_0.5": b"2", b"alert_delivery_latency_le_+Inf": b"2",
    }  # fmt: skip
    sample = build_sample(readings(stats=raw, alert_queues=(1, 2, 3, 4)), NOW_US)
    model = StatsSample.model_validate(sample)
    assert model.model_dump(mode="json") == sample
    assert set(StatsCounters.model_fields) == COUNTERS
    assert set(StatsGauges.model_fields) == GAUGES


def test_samples_stored_before_alerts_existed_still_validate_with_zeros():
    """/stats/history hands back samples as stored, possibly written by an older API: without
    the alert counters, gauges and histogram. The contract reads them as 0 and empty."""
    old = build_sample(readings(), NOW_US)
    for name in COUNTERS:
        if name.startswith("alerts_"):
            del old["counters"][name]
    for name in ("alert_evaluations_waiting", "alert_deliveries_waiting", "alert_history_entries"):
        del old["gauges"][name]
    del old["alert_delivery_latency_le"]
    model = StatsHistory.model_validate({"interval_s": 1.0, "retention_s": 60, "samples": [old]})
    sample = model.samples[0]
    assert sample.counters.alerts_fired == 0 and sample.counters.alerts_delivery_dead == 0
    assert sample.gauges.alert_deliveries_waiting == 0
    assert sample.alert_delivery_latency_le == {}


def test_alert_counters_histogram_and_queues_come_from_the_ledger():
    raw = {
        b"alerts_fired": b"5",
        b"alerts_test_fired": b"1",
        b"alerts_observations": b"40",
        b"alerts_rules_checked": b"120",
        b"alerts_delivered": b"4",
        b"alerts_delivery_retries": b"3",
        b"alerts_delivery_failed": b"1",
        b"alerts_delivery_dead": b"1",
        b"alerts_delivery_host_busy": b"9",  # a /metrics-only figure: not part of the sample
        b"alert_delivery_latency_le_0.1": b"2",
        b"alert_delivery_latency_le_30.0": b"2",
        b"alert_delivery_latency_le_60.0": b"4",
        b"alert_delivery_latency_le_+Inf": b"4",
    }
    sample = build_sample(readings(stats=raw, alert_queues=(2, 3, 4, 6)), NOW_US)
    c = sample["counters"]
    assert (c["alerts_fired"], c["alerts_test_fired"]) == (5, 1)
    assert (c["alerts_observations"], c["alerts_rules_checked"]) == (40, 120)
    assert (c["alerts_delivered"], c["alerts_delivery_retries"]) == (4, 3)
    assert (c["alerts_delivery_failed"], c["alerts_delivery_dead"]) == (1, 1)
    assert "alerts_delivery_host_busy" not in c
    assert all(type(c[name]) is int for name in c if name.startswith("alerts_"))
    le = sample["alert_delivery_latency_le"]
    assert (le["0.05"], le["0.1"], le["30.0"], le["60.0"], le["+Inf"]) == (0, 2, 2, 4, 4)
    g = sample["gauges"]
    assert g["alert_evaluations_waiting"] == 2
    assert g["alert_deliveries_waiting"] == 7  # alerts.deliver + alerts.deliver.retry
    assert g["alert_history_entries"] == 6


def test_counters_histograms_and_rejections_come_from_the_stats_hash():
    raw = {
        b"ingest_accepted": b"21",
        b"ingest_duplicate": b"6",
        b"ingest_conflict": b"4",
        b"calc_ticks": b"21",
        b"flush_ticks_sum": b"21",  # written by HINCRBYFLOAT
        b"flush_seconds_sum": b"0.0375",
        b"flush_seconds_le_0.05": b"2",
        b"flush_seconds_le_10.0": b"3",
        b"view_latency_le_0.1": b"20",
        b"view_latency_le_+Inf": b"21",
        b"rejected:price": b"4",
        b"rejected:unknown_field": b"1",
        b"rejected:unavailable": b"7",
        b"someone-elses-field": b"x",
    }
    sample = build_sample(readings(stats=raw), NOW_US)
    c = sample["counters"]
    assert (c["ingest_accepted"], c["ingest_duplicate"], c["ingest_conflict"]) == (21, 6, 4)
    assert (
        c["calc_ticks"] == 21 and type(c["flush_ticks_sum"]) is int and c["flush_ticks_sum"] == 21
    )
    assert c["flush_seconds_sum"] == 0.0375 and c["calc_batches"] == 0
    assert sample["rejected"] == {"price": 4, "unavailable": 7, "unknown_field": 1}
    assert sample["flush_seconds_le"]["0.05"] == 2 and sample["flush_seconds_le"]["10.0"] == 3
    assert sample["flush_seconds_le"]["0.005"] == 0
    assert sample["view_latency_le"]["0.1"] == 20 and sample["view_latency_le"]["+Inf"] == 21


def test_gauges_are_passed_through_and_only_alive_feeders_count():
    feeders = {
        b"a": feeder(1.0, target=10.0, achieved=9.5),
        b"b": feeder(4.9, target=5, achieved=5.25),
        b"dead": feeder(30.0, target=1000.0, achieved=1000.0),  # silent > 5 s: not alive
        b"broken": b"{not json",
        b"no-time": orjson.dumps({"feeder_id": "x", "target_tps": 7.0}),
        b"odd-rates": feeder(0.5, target="fast", achieved=True),  # alive, rates unusable → 0
    }
    sample = build_sample(
        readings(
            queue_depth=3,
            calc_b_depth=1,
            dead_letters=(1, 1),  # both queues count
            outbox_entries=5,
            outbox_pending=4,
            workers=2,
            feeders=feeders,
        ),
        NOW_US,
    )
    assert sample["gauges"] == {
        "backlog_ticks": 0,
        "queue_depth": 3,
        "calc_b_depth": 1,
        "dead_letters": 2,
        "outbox_entries": 5,
        "outbox_pending": 4,
        "workers": 2,
        "feeders_alive": 3,
        "feeders_target_tps": 15.0,
        "feeders_achieved_tps": 14.75,
        "alert_evaluations_waiting": 0,
        "alert_deliveries_waiting": 0,
        "alert_history_entries": 0,
    }


def unconnected_gateways() -> tuple[LedgerReader, SamplesStore]:
    """Client objects only: nothing connects until a command runs."""
    redis, keys = Redis.from_url("redis://127.0.0.1:1"), Keys("t", "q")
    return LedgerReader(redis, keys, heartbeat_timeout_ms=10_000), SamplesStore(redis, keys)


def test_rejections_are_held_in_memory_by_reason_until_flushed():
    settings = Settings().model_copy(update={"stats_interval": 0.5})
    # A client object only: nothing connects until a command runs, and none does here.
    sampler = StatsSampler(*unconnected_gateways(), settings)
    assert sampler.pending == {}
    sampler.reject("price")
    sampler.reject("price")
    sampler.reject("bogus")
    sampler.reject("unavailable", 5)
    assert sampler.pending == {"price": 2, "unknown_field": 1, "unavailable": 5}


def test_backlog_counts_ticks_waiting_for_calc_and_for_postgres():
    """The ingest script's arithmetic: accepted - applied by calc, plus still in the outbox; a
    counter that ran ahead (a namespace older than the counter) never makes it negative."""
    raw = {b"ingest_accepted": b"1000", b"calc_ticks": b"700", b"outbox_ticks": b"250"}
    assert build_sample(readings(stats=raw), NOW_US)["gauges"]["backlog_ticks"] == 550
    dead = {b"ingest_accepted": b"1000", b"calc_ticks": b"700", b"calc_dead_ticks": b"100"}
    assert build_sample(readings(stats=dead), NOW_US)["gauges"]["backlog_ticks"] == 200
    raw = {b"ingest_accepted": b"10", b"calc_ticks": b"10", b"outbox_ticks": b"-3"}
    assert build_sample(readings(stats=raw), NOW_US)["gauges"]["backlog_ticks"] == 0


# --- slots on simulated time -----------------------------------------------------------------
INTERVAL_S = 0.5


def timed_sampler(time_: SimulatedTime) -> tuple[StatsSampler, list[tuple[int, float]]]:
    """A sampler on simulated time whose rounds only record (slot, when) instead of doing I/O."""
    settings = Settings().model_copy(update={"stats_interval": INTERVAL_S})
    sampler = StatsSampler(
        *unconnected_gateways(),
        settings,
        clock=time_.clock,
        sleep=time_.sleep,
    )
    rounds: list[tuple[int, float]] = []

    async def record_round(slot: int) -> None:
        rounds.append((slot, time_.now))

    sampler._round = record_round  # type: ignore[method-assign]
    return sampler, rounds


def test_one_round_per_slot_each_just_after_its_boundary():
    async def scenario() -> None:
        time_ = SimulatedTime(start=100.25)  # slot 200 began at 100.0
        sampler, rounds = timed_sampler(time_)
        await sampler.start()
        await time_.until_asleep(1)
        assert rounds == [(200, 100.25)]  # the current slot at once
        assert time_.delays == [pytest.approx(0.251, abs=1e-9)]  # 1 ms past the next boundary
        for slot in (201, 202, 203):
            time_.advance(time_.delays[-1])
            await time_.until_asleep(1)
            assert rounds[-1] == (slot, pytest.approx(slot * INTERVAL_S + 0.001, abs=1e-9))
            assert time_.delays[-1] == pytest.approx(INTERVAL_S, abs=1e-9)
        assert [slot for slot, _ in rounds] == [200, 201, 202, 203]
        await sampler.stop()

    asyncio.run(scenario())


def test_a_clock_that_jumps_runs_the_current_slot_once_without_catching_up():
    async def scenario() -> None:
        time_ = SimulatedTime(start=100.0)
        sampler, rounds = timed_sampler(time_)
        await sampler.start()
        await time_.until_asleep(1)
        time_.advance(3 * INTERVAL_S + 0.2)  # three boundaries passed while asleep
        await time_.until_asleep(1)
        assert [slot for slot, _ in rounds] == [200, 203]
        assert time_.delays[-1] == pytest.approx(INTERVAL_S - 0.2 + 0.001, abs=1e-9)
        await sampler.stop()

    asyncio.run(scenario())


def test_the_sample_is_stamped_with_the_injected_clock():
    async def scenario() -> None:
        time_ = SimulatedTime(start=NOW_US / 1_000_000)
        gauges = readings()

        class FakeLedger:
            async def gauges(self, *, now_ms: float) -> Gauges:
                assert now_ms == pytest.approx(NOW_US / 1000)
                return gauges

        sample = await take_sample(cast(LedgerReader, FakeLedger()), time_.clock)
        assert sample["ts_us"] == NOW_US

    asyncio.run(scenario())
