"""A rebuild against every interleaving with ingest, calc and the flusher, step by step.

The process-level tests (test_rebuild.py) show the rebuild exact under live load, but a live race
is a matter of luck: the rebuild of a small history takes milliseconds. Here each step is taken
on demand on the real Redis and PostgreSQL, with the real code of each party: the ingest script
accepts (dedup + calc message + outbox, atomically), `apply_batch` runs a calc message as the
actor does, a flush writes the outbox to md_ticks and deletes it, and the rebuild's own steps
(`open_fence`, `read_durable`, `RebuildStore.swap`) run in between. Every kind of tick the
design distinguishes appears once: merged before the fence, pending through the whole rebuild
(in the outbox or already in PostgreSQL), buffered in the fence before and after R is read,
pending and read into R, pending and accepted after R, and applied during the swap itself (which
must abort it and be taken in by its retry).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Iterator

import orjson
import psycopg
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.bus import ledger
from backend.bus.ingest import IngestScript
from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.bus.rebuild_store import SEAL_AFTER_ATTEMPTS, FenceGone, Rebuilt, SwapInput
from backend.core.rebuild import RebuildStatus
from backend.core.ticks import Tick, decode_tick
from backend.core.window import WindowState
from backend.settings import Settings
from backend.storage.ticks_repo import write_ticks
from tasks.calc import CalcContext, apply_batch
from tasks.rebuild import Rebuilder, rebuilt_state
from tests import reference

pytestmark = pytest.mark.integration

SYMBOL = "AAA"
OTHER = "BBB"  # shares the messages: done-markers are per (message, symbol)


class Parties:
    """Ingest, one calc worker and the flusher, each step run when the test says."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys.from_settings(settings)
        self.calc = CalcContext(
            redis=redis, keys=self.keys, ring=Ring.from_settings(settings),
            done_ttl_s=settings.dedup_ttl, stale_after_s=settings.stale_after,
        )  # fmt: skip
        self.accepted: dict[str, Tick] = {}
        self.rng = random.Random(7)
        self.ts = 1_700_000_000_000_000

    def ticks(self, n: int) -> list[Tick]:
        out = []
        for _ in range(n):
            self.ts += self.rng.randint(0, 3_000_000)  # the 60 s window slides across the test
            out.append(
                Tick(uuid.uuid4().hex, self.rng.choice([SYMBOL, SYMBOL, OTHER]),
                     self.ts - self.rng.randint(0, 2_000_000),  # a little out of order
                     round(self.rng.uniform(90, 110), 2), round(self.rng.uniform(0.1, 5), 3),
                     self.rng.choice(["x", "y"]), None, self.ts)
            )  # fmt: skip
        return out

    def accept(self, n: int = 12, resend: int = 3) -> str:
        """The ingest script on `n` new ticks and `resend` already accepted ones (duplicates,
        which it must refuse); the calc message's id."""
        ticks = self.ticks(n) + self.rng.sample(list(self.accepted.values()),
                                                min(resend, len(self.accepted)))  # fmt: skip
        before = set(self.redis.hkeys(self.keys.queue_messages()))

        async def run() -> None:
            client = AsyncRedis.from_url(self.settings.effective_redis_url)
            try:
                await IngestScript(client, self.keys, self.settings.dedup_ttl)(ticks)
            finally:
                await client.aclose()

        asyncio.run(run())
        self.accepted.update((t.event_id, t) for t in ticks[:n])
        (message_id,) = set(self.redis.hkeys(self.keys.queue_messages())) - before
        return message_id.decode()

    def apply(self, message_id: str) -> None:
        """calc_ticks on the message, then Dramatiq's ack (the body leaves the msgs hash)."""
        body = orjson.loads(self.redis.hget(self.keys.queue_messages(), message_id))
        ticks = [decode_tick(raw) for raw in body["args"][0]]
        apply_batch(self.calc, message_id, ticks, time.time_ns() // 1_000)
        self.redis.hdel(self.keys.queue_messages(), message_id)
        self.redis.lrem(self.keys.queue_list(), 0, message_id)

    def flush(self) -> None:
        """The outbox flusher: write every entry to md_ticks, commit, then delete it."""
        entries = self.redis.xrange(self.keys.outbox)
        ticks = [decode_tick(raw) for _id, f in entries for raw in orjson.loads(f[b"t"])]
        with psycopg.connect(self.settings.pg_url) as conn:
            write_ticks(conn, ticks)
        if entries:
            self.redis.xdel(self.keys.outbox, *(entry_id for entry_id, _ in entries))

    def state(self) -> WindowState:
        return WindowState.from_json(self.redis.get(self.keys.state(SYMBOL)), SYMBOL)


@pytest.fixture
def parties(settings: Settings, redis_client: Redis) -> Iterator[Parties]:
    yield Parties(settings, redis_client)


def test_every_interleaving_counts_each_tick_once(parties: Parties, settings: Settings) -> None:
    p = parties
    m0 = p.accept()
    p.apply(m0)  # merged into the old state, then flushed
    p.flush()
    pending_in_pg = p.accept()
    p.flush()  # pending through the rebuild, its ticks already in md_ticks
    pending_in_outbox = p.accept()  # pending through the rebuild, its ticks in the outbox
    # The old state is wrong (as if corrupted): the rebuild must not keep anything of it.
    wrong = orjson.loads(p.redis.get(p.keys.state(SYMBOL)))
    wrong["ticks_total"] += 500
    p.redis.set(p.keys.state(SYMBOL), orjson.dumps(wrong))

    rebuilder = Rebuilder.from_settings(settings, p.redis)
    stamp = rebuilder.store.open_fence(SYMBOL, time.time_ns() // 1_000)
    buffered_before_r = p.accept()
    p.apply(buffered_before_r)  # fenced: kept in the fence, not merged
    assert p.state().ticks_total == wrong["ticks_total"]
    pending_read = p.accept()  # pending, and read into R (outbox)
    with psycopg.connect(settings.pg_url) as conn:
        read = rebuilder.read_durable(conn, SYMBOL, RebuildStatus(symbol=SYMBOL, phase="fenced"))
    buffered_after_r = p.accept()
    p.apply(buffered_after_r)  # in B, not in R: the swap must merge it
    pending_after_r = p.accept()  # in neither: calc merges it after the swap, normally

    attempts: list[SwapInput] = []

    def during_swap(swap_read: SwapInput) -> Rebuilt:
        attempts.append(swap_read)
        if len(attempts) == 1:  # calc applies a message between the swap's read and its EXEC
            p.apply(p.accept())
        return rebuilt_state(read, swap_read, time.time_ns() // 1_000, settings.stale_after)

    _rebuilt, _read, tries = rebuilder.store.swap(
        SYMBOL, during_swap, stamp=stamp, now_us=time.time_ns() // 1_000,
        calc_queue=settings.queue_name,
        status=lambda _r, _s: RebuildStatus(symbol=SYMBOL, phase="done"), counters={},
    )  # fmt: skip
    assert tries == 2  # the calc commit during the first attempt aborted it
    assert not p.redis.exists(p.keys.rebuild_fence(SYMBOL))
    skip = p.state().skip
    expected_skip = {
        t.event_id for m in (pending_in_pg, pending_in_outbox, pending_read)
        for t in message_ticks(p, m) if t.symbol == SYMBOL
    }  # fmt: skip
    assert skip == expected_skip

    for message_id in (pending_after_r, pending_read, pending_in_outbox, pending_in_pg):
        p.apply(message_id)
    p.apply(p.accept())  # after the rebuild
    p.flush()

    mine = [t for t in p.accepted.values() if t.symbol == SYMBOL]
    ref = reference.view(mine)
    view = orjson.loads(p.redis.get(p.keys.view(SYMBOL)))
    for name in ("ticks_total", "last_event_id", "trades_1m", "high_1m", "low_1m", "open_1m"):
        assert view[name] == ref[name], name
    assert reference.close(view["volume_1m"], ref["volume_1m"])
    assert [e["event_id"] for e in view["last_10"]] == ref["last_10"]
    assert p.state().skip == frozenset()  # every skipped tick came, and was dropped once
    skipped = int(p.redis.hget(p.keys.stats, ledger.REBUILD_SKIPPED) or 0)
    assert skipped == len(expected_skip)
    # The other symbol of the same messages was never fenced: merged once, normally.
    other = reference.view([t for t in p.accepted.values() if t.symbol == OTHER])
    assert orjson.loads(p.redis.get(p.keys.view(OTHER)))["ticks_total"] == other["ticks_total"]


def message_ticks(p: Parties, message_id: str) -> list[Tick]:
    body = orjson.loads(p.redis.hget(p.keys.queue_messages(), message_id))
    return [decode_tick(raw) for raw in body["args"][0]]


def test_calc_fences_a_known_symbol_without_state_and_asks_for_a_rebuild(
    parties: Parties,
) -> None:
    p = parties
    p.apply(p.accept())
    p.redis.delete(p.keys.state(SYMBOL))  # lost (or left under an older format's key)
    m = p.accept()
    mine = {t.event_id for t in message_ticks(p, m) if t.symbol == SYMBOL}
    total_before = orjson.loads(p.redis.get(p.keys.view(SYMBOL)))["ticks_total"]
    p.apply(m)
    fence = p.redis.hgetall(p.keys.rebuild_fence(SYMBOL))
    assert {k.decode() for k in fence} == mine | {"\x00since"}
    assert not p.redis.exists(p.keys.state(SYMBOL))  # nothing merged into an empty state
    assert orjson.loads(p.redis.get(p.keys.view(SYMBOL)))["ticks_total"] == total_before
    requests = p.redis.hvals(p.keys.queue_messages("rebuilds"))
    assert [orjson.loads(r)["args"] for r in requests] == [[[SYMBOL]]]
    p.apply(p.accept())  # fenced already: buffered, and no second request
    assert len(p.redis.hvals(p.keys.queue_messages("rebuilds"))) == 1


def test_a_swap_that_keeps_losing_to_calc_seals_the_symbol_and_gets_through(
    parties: Parties, settings: Settings
) -> None:
    """calc buffering a batch between every swap read and its EXEC would keep the swap retrying
    forever; after SEAL_AFTER_ATTEMPTS the swap seals the symbol and calc waits for it."""
    p = parties
    p.apply(p.accept())
    p.flush()
    rebuilder = Rebuilder.from_settings(settings, p.redis)
    stamp = rebuilder.store.open_fence(SYMBOL, time.time_ns() // 1_000)
    with psycopg.connect(settings.pg_url) as conn:
        read = rebuilder.read_durable(conn, SYMBOL, RebuildStatus(symbol=SYMBOL, phase="fenced"))
    waiting: list[threading.Thread] = []

    def busy_calc(swap_read: SwapInput) -> Rebuilt:
        message = p.accept()
        if not p.redis.exists(p.keys.rebuild_seal(SYMBOL)):
            p.apply(message)  # lands in the fence: this attempt aborts
        else:  # sealed: calc must wait for the swap, not buffer
            worker = threading.Thread(target=p.apply, args=(message,))
            worker.start()
            worker.join(0.2)
            assert worker.is_alive(), "calc did not wait for the sealed swap"
            waiting.append(worker)
        return rebuilt_state(read, swap_read, time.time_ns() // 1_000, settings.stale_after)

    _rebuilt, _read, tries = rebuilder.store.swap(
        SYMBOL, busy_calc, stamp=stamp, now_us=time.time_ns() // 1_000,
        calc_queue=settings.queue_name,
        status=lambda _r, _s: RebuildStatus(symbol=SYMBOL, phase="done"), counters={},
    )  # fmt: skip
    assert tries == SEAL_AFTER_ATTEMPTS + 1
    (worker,) = waiting
    worker.join(10)
    assert not worker.is_alive()
    assert not p.redis.exists(p.keys.rebuild_seal(SYMBOL), p.keys.rebuild_fence(SYMBOL))
    mine = [t for t in p.accepted.values() if t.symbol == SYMBOL]
    view = orjson.loads(p.redis.get(p.keys.view(SYMBOL)))
    assert view["ticks_total"] == reference.view(mine)["ticks_total"]


def test_a_swap_under_a_fence_set_again_by_someone_else_starts_over(
    parties: Parties, settings: Settings
) -> None:
    """Rebuild 1 reads R under a fence; rebuild 2 swaps (lifting it); calc merges unfenced;
    calc or rebuild 3 fences the symbol again. Rebuild 1's R misses what calc merged in the
    unfenced stretch, so it must not swap under the new fence: it starts over, and is exact."""
    p = parties
    p.apply(p.accept())
    p.flush()
    first, second = (Rebuilder.from_settings(settings, p.redis) for _ in range(2))
    stamp = first.store.open_fence(SYMBOL, time.time_ns() // 1_000)
    with psycopg.connect(settings.pg_url) as conn:
        read = first.read_durable(conn, SYMBOL, RebuildStatus(symbol=SYMBOL, phase="fenced"))
    second.rebuild([SYMBOL])  # shares the fence, swaps, lifts it
    p.apply(p.accept())  # merged normally: not in the first rebuild's R
    assert second.store.open_fence(SYMBOL, time.time_ns() // 1_000) != stamp

    def build(swap_read: SwapInput) -> Rebuilt:
        return rebuilt_state(read, swap_read, time.time_ns() // 1_000, settings.stale_after)

    with pytest.raises(FenceGone):
        first.store.swap(
            SYMBOL, build, stamp=stamp, now_us=time.time_ns() // 1_000,
            calc_queue=settings.queue_name,
            status=lambda _r, _s: RebuildStatus(symbol=SYMBOL, phase="done"), counters={},
        )  # fmt: skip
    first.rebuild([SYMBOL])  # what the rebuild does on FenceGone: again, from the fence
    mine = [t for t in p.accepted.values() if t.symbol == SYMBOL]
    view = orjson.loads(p.redis.get(p.keys.view(SYMBOL)))
    assert view["ticks_total"] == reference.view(mine)["ticks_total"]
    assert not p.redis.exists(p.keys.rebuild_fence(SYMBOL))
