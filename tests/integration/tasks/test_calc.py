"""calc-a on a real Redis: concurrent workers, redelivery after a partial batch, exactness.

Each test builds its own `CalcContext`s (one per simulated worker process: its own symbol locks
and state cache) on the test's Redis namespace and calls `apply_batch` as the actor does.
"""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import orjson
import pytest
from redis import Redis

from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.core.ticks import Tick
from backend.settings import Settings
from tasks.calc import CalcContext, apply_batch
from tests import reference
from tests.bench import calc_concurrency

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000
SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]


def make_ticks(seed: int, count: int) -> list[Tick]:
    """A random walk per symbol over ~90 s of event time (the 60 s window slides), shuffled
    within small spans so some ticks arrive late."""
    rng = random.Random(seed)
    price = dict.fromkeys(SYMBOLS, 100.0)
    seq: dict[tuple[str, str], int] = {}
    ticks = []
    for i in range(count):
        symbol = rng.choice(SYMBOLS)
        source = rng.choice(["x", "y"])
        price[symbol] = round(price[symbol] * (1 + rng.gauss(0, 1e-3)), 4)
        seq[(symbol, source)] = seq.get((symbol, source), 0) + 1
        ts = T0 + i * (90_000_000 // count)
        ticks.append(
            Tick(uuid.uuid4().hex, symbol, ts, price[symbol], round(rng.uniform(0.1, 9), 3),
                 source, seq[(symbol, source)], ts + 500)
        )  # fmt: skip
    for start in range(0, count, 7):  # local disorder
        span = ticks[start : start + 7]
        rng.shuffle(span)
        ticks[start : start + 7] = span
    return ticks


def context(settings: Settings, redis: Redis) -> CalcContext:
    return CalcContext(
        redis=redis,
        keys=Keys.from_settings(settings),
        ring=Ring.from_settings(settings),
        done_ttl_s=settings.dedup_ttl,
        stale_after_s=settings.stale_after,
    )


def stored_view(redis: Redis, keys: Keys, symbol: str) -> dict[str, Any]:
    raw = redis.get(keys.view(symbol))
    assert raw is not None, symbol
    return orjson.loads(raw)


def assert_views_exact(redis: Redis, keys: Keys, ticks: list[Tick]) -> None:
    for symbol in SYMBOLS:
        mine = [t for t in ticks if t.symbol == symbol]
        ref = reference.view(mine)
        got = stored_view(redis, keys, symbol)
        for name in ("last_price", "last_event_id", "ticks_total", "trades_1m", "high_1m",
                     "low_1m", "open_1m"):  # fmt: skip
            assert got[name] == ref[name], (symbol, name)
        for name in ("sma_10", "vwap_1m", "volume_1m"):
            assert reference.close(got[name], ref[name]), (symbol, name)
        assert [e["event_id"] for e in got["last_10"]] == ref["last_10"]


def calc_ticks_counted(redis: Redis, keys: Keys) -> int:
    return int(redis.hget(keys.stats, "calc_ticks") or 0)


def test_concurrent_workers_give_the_exact_views(settings: Settings, redis_client: Redis) -> None:
    """Two "processes" × three threads apply 60 batches, every batch touching every symbol."""
    ticks = make_ticks(seed=1, count=6_000)
    batches = [ticks[i : i + 100] for i in range(0, len(ticks), 100)]
    contexts = [context(settings, redis_client), context(settings, redis_client)]
    work = list(enumerate(batches))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(ctx: CalcContext) -> None:
        while True:
            with lock:
                if not work:
                    return
                _, batch = work.pop(0)
            try:
                assert apply_batch(ctx, uuid.uuid4().hex, batch, batch[-1].ts_us + 1_000)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker, args=(ctx,)) for ctx in contexts for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    keys = contexts[0].keys
    assert_views_exact(redis_client, keys, ticks)
    assert calc_ticks_counted(redis_client, keys) == len(ticks)
    assert int(redis_client.hget(keys.stats, "calc_batches") or 0) == len(batches)


def test_a_batch_redelivered_after_a_partial_apply_applies_only_the_rest(
    settings: Settings, redis_client: Redis
) -> None:
    """A worker that died after committing some symbols of a batch: the redelivery (same message
    id) applies the other symbols once and leaves the committed ones alone."""
    ticks = make_ticks(seed=2, count=800)
    first, last = ticks[:400], ticks[400:]
    ctx = context(settings, redis_client)
    assert apply_batch(ctx, "m-1", first, T0)
    # The crash: only AAA and BBB of batch m-2 were committed...
    assert apply_batch(ctx, "m-2", [t for t in last if t.symbol in ("AAA", "BBB")], T0)
    # ...then the whole batch comes back, to a fresh process (no cache, no locks).
    fresh = context(settings, Redis.from_url(settings.effective_redis_url))
    assert apply_batch(fresh, "m-2", last, T0)
    assert not apply_batch(fresh, "m-2", last, T0)  # and a third delivery changes nothing
    assert_views_exact(redis_client, ctx.keys, ticks)
    assert calc_ticks_counted(redis_client, ctx.keys) == len(ticks)


def test_a_state_written_by_another_worker_is_read_not_served_from_cache(
    settings: Settings, redis_client: Redis
) -> None:
    """Worker A caches the state it wrote; worker B then moves the symbol on. A's next batch
    must merge into B's state, not into its own stale copy."""
    ticks = make_ticks(seed=3, count=900)
    a, b = context(settings, redis_client), context(settings, redis_client)
    for n, (ctx, part) in enumerate([(a, ticks[:300]), (b, ticks[300:600]), (a, ticks[600:])]):
        assert apply_batch(ctx, f"m-{n}", part, T0)
    assert_views_exact(redis_client, a.keys, ticks)


def test_the_calc_concurrency_bench_runs_both_ways_without_redoing_transactions() -> None:
    """`python -m tests.bench.calc_concurrency`, tiny: within one process the symbol locks mean
    no transaction is ever redone, whatever the threads."""
    results = calc_concurrency.run(["--rate", "200", "--timed-seconds", "20", "--threads", "4"])
    assert set(results) == {4, 1}
    for r in results.values():
        assert r["ticks_per_s"] > 0 and r["cpu_us_per_tick"] > 0
        assert r["redone"] == 0, results
