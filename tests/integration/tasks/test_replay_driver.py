"""The replay driver in-process on real Redis and PostgreSQL, with an injected clock and sleeper:
two drivers of one message at once, a driver that dies between calc and its commit, and pacing
on a fake clock. The slices are called directly, as the actor would."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from redis import Redis

from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.bus.replay_progress import ReplayProgressStore
from backend.core.candles import from_ticks
from backend.core.replay import GROUP_MAX_TICKS, ReplayRecord
from backend.core.ticks import Tick
from backend.core.view import View
from backend.core.window import WindowState
from backend.settings import Settings
from tasks import replay as driver
from tasks.calc import apply_batch
from tests import reference
from tests.support.history import make_history, store


class FakeTime:
    """A clock that only moves when the driver sleeps (or a test says so)."""

    def __init__(self, start_us: int = 1_000_000_000) -> None:
        self.now_us = start_us
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> int:
        with self._lock:
            return self.now_us

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now_us += int(seconds * 1_000_000)


def _env(
    settings: Settings,
    redis: Redis,
    time: FakeTime,
    slice_s: float = 3600,
    yield_backlog: int = 1_000,
) -> driver.ReplayEnv:
    return driver.ReplayEnv(
        redis=redis,
        keys=Keys.from_settings(settings),
        ring=Ring.from_settings(settings),
        connect=lambda: psycopg.connect(settings.psycopg_url),
        ttl_s=600,
        slice_s=slice_s,
        stale_after_s=10,
        yield_backlog=yield_backlog,
        clock_us=time.clock,
        sleep=time.sleep,
    )


def _create(redis: Redis, settings: Settings, ticks: list[Tick], **fields: Any) -> ReplayRecord:
    record = ReplayRecord(
        id=fields.pop("id", "r1"),
        symbols=sorted({t.symbol for t in ticks}),
        from_us=min(t.ts_us for t in ticks),
        to_us=max(t.ts_us for t in ticks) + 1,
        speed=fields.pop("speed", "max"),
        alerts="off",
        created_us=0,
        expires_us=600_000_000,
        **fields,
    )
    redis.set(Keys.from_settings(settings).replay_record(record.id), record.model_dump_json())
    return record


def _assert_exact(redis: Redis, settings: Settings, replay_id: str, ticks: list[Tick]) -> None:
    keys = Keys.from_settings(settings).for_replay(replay_id)
    for symbol in sorted({t.symbol for t in ticks}):
        mine = [t for t in ticks if t.symbol == symbol]
        view = View.model_validate_json(redis.get(keys.view(symbol)))
        ref = reference.view(mine)
        assert (view.ticks_total, view.last_event_id, view.trades_1m) == (
            ref["ticks_total"], ref["last_event_id"], ref["trades_1m"],
        )  # fmt: skip
        assert WindowState.from_json(redis.get(keys.state(symbol)), symbol).ticks_total == len(mine)
        stored = {int(b): c for b, c in redis.hgetall(keys.candles_1m(symbol)).items()}
        expected = reference.candles(mine, 60_000_000)
        assert sorted(stored) == sorted(expected)
        for bucket, candle in from_ticks(mine, 60_000_000).items():
            assert stored[bucket] == candle.to_record()


def test_two_drivers_of_one_message_apply_every_group_once(
    settings: Settings, redis_client: Redis
) -> None:
    ticks = make_history(["AAA", "BBB"], ticks_per_symbol=6_000, span_s=300)
    store(settings.psycopg_url, ticks)
    _create(redis_client, settings, ticks)
    results: list[Any] = []

    def drive() -> None:
        results.append(driver.run_slice(_env(settings, redis_client, FakeTime()), "r1", 0, 0))

    threads = [threading.Thread(target=drive) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    finished = [r for r in results if r is not None and r.state == "done"]
    assert len(finished) >= 1  # the other one found the record moved on (or began too late)
    assert finished[0].ticks_applied == len(ticks)
    _assert_exact(redis_client, settings, "r1", ticks)


def test_a_driver_that_died_after_calc_but_before_its_commit_is_redone_exactly(
    settings: Settings, redis_client: Redis
) -> None:
    ticks = make_history(["AAA", "BBB", "CCC"], ticks_per_symbol=3_000, span_s=120, seed=2)
    store(settings.psycopg_url, ticks)
    record = _create(redis_client, settings, ticks)
    # What a dead driver left behind: the first group applied by calc for one symbol only (the
    # marker of its cursor names it), no commit.
    env = _env(settings, redis_client, FakeTime())
    first_group = sorted(ticks, key=lambda t: (t.ts_us, t.event_id))[:GROUP_MAX_TICKS]
    calc = driver.CalcContext(
        redis=redis_client, keys=env.keys.for_replay("r1"),
        ring=Ring(key=env.keys.for_replay("r1").private_ring, max_events=100),
        done_ttl_s=600, stale_after_s=10,
    )  # fmt: skip
    apply_batch(calc, "replay:start", [t for t in first_group if t.symbol == "AAA"], 1)
    assert record.cursor is None

    done = driver.run_slice(env, "r1", 0, 0)

    assert done is not None and done.state == "done" and done.ticks_applied == len(ticks)
    _assert_exact(redis_client, settings, "r1", ticks)
    # The commits deleted every group's done-marker.
    assert not list(redis_client.scan_iter(match=f"{calc.keys.namespace}:calc-done2:*"))


def test_pacing_on_a_fake_clock_is_never_early_and_hands_over_at_the_slice_end(
    settings: Settings, redis_client: Redis
) -> None:
    ticks = make_history(["AAA"], ticks_per_symbol=400, span_s=40, seed=4)
    store(settings.psycopg_url, ticks)
    _create(redis_client, settings, ticks, speed=4.0)
    time = FakeTime()
    env = _env(settings, redis_client, time, slice_s=3.0)
    store_ = ReplayProgressStore(redis_client, env.keys, env.ring, 600)
    span_us = max(t.ts_us for t in ticks) - min(t.ts_us for t in ticks)

    started = time.clock()
    step = 0
    slices = 0
    while True:
        record = driver.run_slice(env, "r1", 0, step)
        slices += 1
        assert record is not None
        if record.state == "done":
            break
        assert record.step == step + 1  # handed over to the next message
        step = record.step
    elapsed = time.clock() - started

    final = store_.load("r1")
    assert final is not None and final.ticks_applied == len(ticks)
    # 40 s of event time at 4x: never less than 10 s of (fake) wall time, and not much more
    # (the fake clock only moves when the driver sleeps: what it slept is its pacing).
    assert span_us // 4 <= elapsed <= span_us // 4 + 300_000
    assert slices >= 3  # 3 s slices over ~10 s
    assert max(time.slept) <= driver.CONTROL_POLL_S


def test_a_replay_gives_way_while_live_calc_is_behind(
    settings: Settings, redis_client: Redis
) -> None:
    ticks = make_history(["AAA"], ticks_per_symbol=300, span_s=30, seed=6)
    store(settings.psycopg_url, ticks)
    _create(redis_client, settings, ticks)
    live = Keys.from_settings(settings)
    # 600 live ticks accepted, 100 applied by calc: 500 waiting, above the 200 allowed.
    redis_client.hset(live.stats, mapping={"ingest_accepted": 600, "calc_ticks": 100})
    time = FakeTime()
    env = _env(settings, redis_client, time, slice_s=2.0, yield_backlog=200)

    waited = driver.run_slice(env, "r1", 0, 0)

    assert waited is not None and waited.state == "running"
    assert waited.ticks_applied == 0 and waited.step == 1  # the slice passed, handed over
    assert sum(time.slept) >= 2.0
    redis_client.hset(live.stats, "calc_ticks", 450)  # live caught up: 150 waiting
    done = driver.run_slice(env, "r1", 0, 1)
    assert done is not None and done.state == "done" and done.ticks_applied == len(ticks)
