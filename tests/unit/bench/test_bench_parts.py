"""Pure helpers of the pipeline benchmark: histogram quantiles and Redis cost per tick."""

from __future__ import annotations

from tests.bench.pipeline.counters import bucket_quantiles, redis_cost


def test_quantiles_come_from_the_requests_between_two_scrapes() -> None:
    before = {0.01: 50.0, 0.05: 100.0, 1.0: 100.0, float("inf"): 100.0}
    # 100 more requests: 40 under 10 ms, 59 more under 50 ms, 1 under 1 s.
    after = {0.01: 90.0, 0.05: 199.0, 1.0: 200.0, float("inf"): 200.0}
    q = bucket_quantiles(before, after)
    assert q == {"requests": 100.0, "p50_le_ms": 50.0, "p99_le_ms": 50.0}
    after_slow = after | {0.05: 190.0}
    assert bucket_quantiles(before, after_slow)["p99_le_ms"] == 1000.0
    assert bucket_quantiles({}, {})["p50_le_ms"] is None


def test_redis_cost_is_per_accepted_tick_costliest_first() -> None:
    before = {"evalsha": (10, 1_000), "zadd": (5, 100)}
    after = {"evalsha": (30, 21_000), "zadd": (25, 10_100), "get": (7, 7)}
    cost = redis_cost(before, after, ticks=1_000)
    assert list(cost) == ["evalsha", "zadd", "get"]
    assert cost["evalsha"] == {"us_per_tick": 20.0, "calls_per_1k": 20.0}
    assert cost["zadd"]["us_per_tick"] == 10.0
    assert redis_cost(before, after, ticks=0) == {}
