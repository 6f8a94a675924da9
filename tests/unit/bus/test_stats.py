"""The shared stats hash's pure parts: the latency histogram, rejection reasons, parsing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backend.bus import stats


def naive_view_latency(latencies_us: list[int]) -> dict[str, int]:
    """Reference: for each observation, +1 in every bucket whose bound (s) is >= it, and +Inf."""
    fields: dict[str, int] = {}
    for latency in latencies_us:
        for bound in stats.VIEW_LATENCY_BUCKETS:
            if latency / 1_000_000 <= bound:
                name = f"view_latency_le_{bound}"
                fields[name] = fields.get(name, 0) + 1
        fields["view_latency_le_+Inf"] = fields.get("view_latency_le_+Inf", 0) + 1
    return fields


def test_each_observation_counts_in_every_bucket_at_or_above_it():
    fields = stats.view_latency_fields([3_000, 5_000, 5_001, 700_000, 11_000_000])
    assert fields == {
        "view_latency_le_0.005": 2,  # 3 ms and exactly 5 ms (bounds are inclusive)
        "view_latency_le_0.01": 3,
        "view_latency_le_0.025": 3,
        "view_latency_le_0.05": 3,
        "view_latency_le_0.1": 3,
        "view_latency_le_0.25": 3,
        "view_latency_le_0.5": 3,
        "view_latency_le_1.0": 4,
        "view_latency_le_2.5": 4,
        "view_latency_le_5.0": 4,
        "view_latency_le_10.0": 4,
        "view_latency_le_+Inf": 5,  # 11 s is only in +Inf
    }


def test_no_observations_change_nothing_and_skew_counts_as_zero():
    assert stats.view_latency_fields([]) == {}
    skewed = stats.view_latency_fields([-2_000_000])  # worker clock behind the API's
    assert len(skewed) == len(stats.VIEW_LATENCY_BUCKETS) + 1
    assert set(skewed.values()) == {1}


def test_slow_observations_leave_the_small_buckets_out():
    assert stats.view_latency_fields([3_000_000]) == {
        "view_latency_le_5.0": 1,
        "view_latency_le_10.0": 1,
        "view_latency_le_+Inf": 1,
    }


@given(st.lists(st.integers(min_value=-1_000_000, max_value=20_000_000), max_size=200))
def test_matches_the_naive_histogram(latencies_us: list[int]):
    assert stats.view_latency_fields(latencies_us) == naive_view_latency(latencies_us)


def test_view_buckets_use_the_flush_histograms_bounds_and_names():
    """The /stats contract keys both histograms by the same str(bound) labels."""
    assert stats.VIEW_LATENCY_BUCKETS == stats.FLUSH_BUCKETS
    flush = stats.flush_fields(rows_written=1, ticks=1, seconds=0.005)
    view = stats.view_latency_fields([5_000])
    assert {k.removeprefix("flush_seconds_le_") for k in flush if "_le_" in k} == {
        k.removeprefix("view_latency_le_") for k in view if k != "view_latency_le_+Inf"
    }


def test_rejection_reasons_are_the_tick_fields_and_bounded_otherwise():
    for field in ("symbol", "price", "volume", "source", "ts", "event_id", "seq", "body"):
        assert stats.rejection_reason(field) == field
    assert stats.rejection_reason("unavailable") == "unavailable"
    assert stats.rejection_reason("bogus") == "unknown_field"
    assert stats.rejection_reason("x" * 10_000) == "unknown_field"


def test_parse_reads_numbers_and_skips_what_is_not_one():
    raw = {b"calc_ticks": b"12", b"flush_seconds_sum": b"0.25", b"junk": b"not-a-number"}
    assert stats.parse(raw) == {"calc_ticks": 12.0, "flush_seconds_sum": 0.25}
