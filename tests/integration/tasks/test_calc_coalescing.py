"""calc coalescing through the real API, Redis and Dramatiq worker processes.

Ticks are acknowledged while no worker runs, so their calc messages wait in the queue; then a
worker starts and takes them together. The views must equal the reference over the acknowledged
ticks whatever was taken with what, each message must be counted once, and nothing may be left
in a queue or an ack set.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from backend.bus import ledger
from backend.bus.calc_claims import CalcClaims
from backend.bus.keys import CALC_ACTOR, Keys
from backend.bus.realtime import Ring
from backend.core.ticks import Tick, decode_tick
from backend.settings import Settings
from tasks.calc import Batch, CalcContext, apply_batches
from tasks.calc_coalescing import Coalescer, StepResult
from tests.integration.tasks.test_calc import SYMBOLS, assert_views_exact, context, make_ticks
from tests.support.load import Stream, as_tick
from tests.support.processes import AUTH, Processes, running, settings_env
from tests.support.verify import view_mismatches
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

API_KEY = "coalesce-key"
ADMIN = {"x-api-key": API_KEY}


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_key": SecretStr(API_KEY)})


def counter(redis: Redis, keys: Keys, name: str) -> int:
    return int(redis.hget(keys.stats, name) or 0)


def post_one_by_one(procs: Processes, ticks: list[dict[str, Any]]) -> list[Tick]:
    """One request each, sequentially: one calc message per accepted tick."""
    acked: list[Tick] = []
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        for body in ticks:
            answer = client.post("/ingest/tick", json=body)
            assert answer.status_code == 200, answer.text
            if answer.json()["status"] == "accepted":
                acked.append(as_tick(body))
    return acked


def views_exact(procs: Processes, acked: list[Tick]) -> list[str]:
    problems, overcount = view_mismatches(procs.api_url, acked, headers=ADMIN)
    return problems + ([f"{overcount} ticks counted twice"] if overcount else [])


def nothing_held(redis: Redis, keys: Keys) -> bool:
    """No calc message waits in the queue, in its body hash or in any worker's ack set."""
    acks = [k for k in redis.scan_iter(keys.worker_acks("*")) if redis.scard(k)]
    return not acks and not redis.llen(keys.queue_list()) and not redis.hlen(keys.queue_messages())


def converge(procs: Processes, redis: Redis, keys: Keys, acked: list[Tick]) -> None:
    wait_for(
        lambda: counter(redis, keys, ledger.CALC_TICKS) >= len(acked), 45, what="calc caught up"
    )
    wait_for(lambda: not views_exact(procs, acked), 30, what="views equal to the reference")
    wait_for(lambda: nothing_held(redis, keys), 30, what="every calc message acked")
    assert counter(redis, keys, ledger.CALC_TICKS) == len(acked)


@pytest.mark.parametrize("coalesce", [200, 0], ids=["coalesced", "one-message-per-step"])
def test_queued_messages_are_applied_together_and_exactly(
    admin_settings: Settings, redis_client: Redis, tmp_path: Path, coalesce: int
) -> None:
    keys = Keys.from_settings(admin_settings)
    env = settings_env(admin_settings) | {"CALC_COALESCE_MESSAGES": str(coalesce)}
    stream = Stream(seed=17, dup_rate=0.05, bad_rate=0.0)  # resends and out-of-order ts
    with running(env, tmp_path) as procs:
        procs.start_api()
        acked = post_one_by_one(procs, stream.take(240))
        messages = len(acked)  # each accepted request is one calc message
        assert messages > 200 and redis_client.llen(keys.queue_list()) == messages
        procs.start_worker(processes=1, threads=2)
        converge(procs, redis_client, keys, acked)
    assert counter(redis_client, keys, ledger.CALC_BATCHES) == messages  # each message counted once
    steps = counter(redis_client, keys, ledger.CALC_STEPS)
    if coalesce:
        # A step per symbol over what was queued together, not a step per message.
        assert steps <= messages // 4, (steps, messages)
    else:
        assert steps == messages  # every message has one symbol: one transaction each


def test_a_poison_message_runs_alone_and_innocent_ones_are_never_dead_lettered(
    admin_settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    """A step that takes a poison message with others fails; the others go back marked solo and
    are applied exactly, only the poison messages reach the dead letters."""
    keys = Keys.from_settings(admin_settings)
    env = settings_env(admin_settings) | {"CALC_MAX_RETRIES": "1"}
    stream = Stream(seed=23, dup_rate=0.0, bad_rate=0.0)
    with (
        running(env, tmp_path) as procs,
        httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as api,
    ):
        procs.start_api()
        # A corrupted state: every message touching the symbol fails in calc.
        redis_client.set(keys.state("POISON"), b"not json")
        good = post_one_by_one(procs, stream.take(40))
        poison = dict(stream.take(1)[0], symbol="POISON")
        assert api.post("/ingest/tick", json=poison).status_code == 200
        good += post_one_by_one(procs, stream.take(40))
        procs.start_worker(processes=1, threads=2)
        listed = wait_for(
            lambda: (r := api.get("/admin/dead-letters", headers=ADMIN).json())["total"] and r,
            30,
            what="the poison message in the dead letters",
        )
        [dead] = listed["dead_letters"]
        assert "POISON" in dead["reason"] and dead["items"] == 1, dead
        converge(procs, redis_client, keys, good)  # every innocent tick once, none left waiting
        assert counter(redis_client, keys, "calc_dead_ticks") == 1
        assert procs.procs["worker"].poll() is None


def test_messages_claimed_by_a_worker_that_died_are_redelivered_and_applied_once(
    admin_settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    """A worker claims the queue, applies part of it and dies before acking anything: its claims
    come back when its heartbeat is found stale, and the applied part is not applied again."""
    keys = Keys.from_settings(admin_settings)
    stream = Stream(seed=31, dup_rate=0.0, bad_rate=0.0)
    with running(settings_env(admin_settings), tmp_path) as procs:
        procs.start_api()
        acked = post_one_by_one(procs, stream.take(60))
        claims = CalcClaims(redis_client, keys, max_messages=1_000, max_bytes=10_000_000)
        long_ago_ms = int(time.time() * 1000) - 3_600_000  # its last heartbeat: an hour ago
        claim = claims.take("dead-worker", ["no-such-main"], long_ago_ms)
        assert len(claim.messages) == len(acked) and not redis_client.llen(keys.queue_list())
        # It applied the first half, coalesced, then died holding every claim.
        half = [_batch(body) for _, body in _pairs(claim)[: len(acked) // 2]]
        ctx = CalcContext(
            redis=redis_client, keys=keys, ring=Ring.from_settings(admin_settings),
            done_ttl_s=admin_settings.dedup_ttl, stale_after_s=admin_settings.stale_after,
        )  # fmt: skip
        assert apply_batches(ctx, half, int(time.time() * 1_000_000))
        assert counter(redis_client, keys, ledger.CALC_TICKS) == len(half)
        procs.start_worker(processes=1, threads=2)  # its maintenance finds the dead heartbeat
        converge(procs, redis_client, keys, acked)


def _pairs(claim: Any) -> list[tuple[str, bytes]]:
    return [(m.redis_id, m.body) for m in claim.messages]


def _batch(body: bytes) -> Batch:
    message = dramatiq.Message.decode(body)
    return Batch(str(message.message_id), [decode_tick(raw) for raw in message.args[0]])


class FakeBroker:
    broker_id = "in-process-worker"


def test_the_threads_of_a_process_and_the_queue_behind_them_share_one_step(
    settings: Settings, redis_client: Redis
) -> None:
    """Three threads hold a message each while ten more wait in the queue: the first thread to
    arrive leads, lingers until the others have joined, and applies all thirteen in one step,
    one transaction per symbol; each thread gets its own message's outcome."""
    keys = Keys.from_settings(settings)
    ticks = make_ticks(seed=5, count=1_300)
    batches = [Batch(f"m-{i}", ticks[i * 100 : (i + 1) * 100]) for i in range(13)]
    with redis_client.pipeline() as pipe:  # ten queued, as the ingest script sends them
        queued = [_enqueue(pipe, keys, batch) for batch in batches[3:]]
        pipe.execute()
    ctx = context(settings, redis_client)
    claims = CalcClaims(redis_client, keys, max_messages=100, max_bytes=10_000_000)
    joined = threading.Event()
    coalescer = Coalescer(
        ctx, claims, FakeBroker(), lambda f: f, lambda: T_NOW_US,
        linger_s=1.0, sleep=lambda _s: joined.wait(30),
    )  # fmt: skip
    results: dict[str, StepResult] = {}

    def hold(batch: Batch) -> None:
        results[batch.message_id] = coalescer.apply(batch, f"r-{batch.message_id}")

    threads = [threading.Thread(target=hold, args=(b,)) for b in batches[:3]]
    for thread in threads:
        thread.start()
    wait_for(lambda: coalescer.waiting == 3, 10, what="three messages in hand")
    joined.set()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["m-0", "m-1", "m-2"]
    [led] = [r for r in results.values() if len(r.batches) > 1]
    assert sorted(b.message_id for b in led.batches) == sorted(b.message_id for b in batches)
    assert all(r.applied for r in results.values())
    assert_views_exact(redis_client, keys, ticks)
    assert counter(redis_client, keys, ledger.CALC_TICKS) == len(ticks)
    assert counter(redis_client, keys, ledger.CALC_BATCHES) == len(batches)
    assert counter(redis_client, keys, ledger.CALC_STEPS) == len(SYMBOLS)
    # The claimed ten were acked (deleted); none waits in the queue or the ack set.
    assert not redis_client.llen(keys.queue_list())
    assert not any(redis_client.hmget(keys.queue_messages(), queued))
    assert not redis_client.scard(keys.worker_acks(FakeBroker.broker_id))


T_NOW_US = 1_700_000_100_000_000


def _enqueue(pipe: Any, keys: Keys, batch: Batch) -> str:
    """The calc message of `batch`, queued as the ingest script queues one (its redis id)."""
    message = dramatiq.Message(
        queue_name=keys.queue_name, actor_name=CALC_ACTOR,
        args=([list(t) for t in batch.ticks], []), kwargs={}, options={},
        message_id=batch.message_id,
    )  # fmt: skip
    redis_id = f"r-{batch.message_id}"
    pipe.hset(keys.queue_messages(), redis_id, message.encode())
    pipe.rpush(keys.queue_list(), redis_id)
    return redis_id


class Interrupted(BaseException):
    """Stands in for what Dramatiq raises into a thread (time limit, shutdown)."""


def test_a_leader_interrupted_mid_step_fails_its_group_and_hands_on_the_lead(
    settings: Settings, redis_client: Redis
) -> None:
    """The group's members get the leader's exception (Dramatiq retries their messages), and the
    process's next message still gets a step: nobody is left holding the lead."""
    keys = Keys.from_settings(settings)
    ticks = make_ticks(seed=7, count=300)
    batches = [Batch(f"i-{i}", ticks[i * 100 : (i + 1) * 100]) for i in range(3)]
    ctx = context(settings, redis_client)
    claims = CalcClaims(redis_client, keys, max_messages=100, max_bytes=10_000_000)
    joined = threading.Event()
    calls = 0

    def retrying(apply: Any) -> Any:
        def run(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise Interrupted  # the first step's leader, mid-step
            return apply(*args)

        return run

    coalescer = Coalescer(
        ctx, claims, FakeBroker(), retrying, lambda: T_NOW_US,
        linger_s=1.0, sleep=lambda _s: joined.wait(30),
    )  # fmt: skip
    outcomes: dict[str, str] = {}

    def hold(batch: Batch) -> None:
        try:
            coalescer.apply(batch, f"r-{batch.message_id}")
            outcomes[batch.message_id] = "applied"
        except Interrupted:
            outcomes[batch.message_id] = "interrupted"

    first = [threading.Thread(target=hold, args=(b,)) for b in batches[:2]]
    for thread in first:
        thread.start()
    wait_for(lambda: coalescer.waiting == 2, 10, what="two messages in hand")
    joined.set()
    for thread in first:
        thread.join(30)
    assert outcomes == {"i-0": "interrupted", "i-1": "interrupted"}
    later = threading.Thread(target=hold, args=(batches[2],))
    later.start()
    later.join(30)
    assert not later.is_alive(), "the lead was never handed on"
    assert outcomes["i-2"] == "applied"
    assert counter(redis_client, keys, ledger.CALC_TICKS) == 100  # only the later message's
