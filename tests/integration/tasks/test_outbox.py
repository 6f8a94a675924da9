"""The outbox flusher against real Redis and Postgres: claims a dead flusher's entries, writes
them once, and deletes them only after the commit."""

from __future__ import annotations

import psycopg
import pytest
from redis import Redis

from backend.bus.keys import OUTBOX_GROUP, Keys
from backend.bus.outbox import OutboxStream
from backend.core.ticks import Tick, encode_tick
from backend.settings import Settings
from backend.storage.ticks_repo import write_ticks
from tasks.outbox import OutboxFlusher
from tests.support.verify import stored_ticks
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
T0 = 1_795_000_000_000_000


def batch(prefix: str, n: int) -> list[Tick]:
    return [Tick(f"{prefix}-{i}", "OBX", T0 + i, 1.0 + i, 2.0, "s", i, T0) for i in range(n)]


def stage(redis: Redis, keys: Keys, ticks: list[Tick]) -> None:
    body = b"[" + b",".join(encode_tick(t) for t in ticks) + b"]"
    redis.xadd(keys.outbox, {"t": body})


def test_dead_flushers_entries_are_claimed_written_once_and_deleted(
    settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    OutboxStream(redis_client, keys).ensure_group()
    stage(redis_client, keys, batch("a", 30))
    stage(redis_client, keys, batch("b", 30))
    # A flusher reads both entries and dies before writing them.
    read = redis_client.xreadgroup(OUTBOX_GROUP, "dead-flusher", {keys.outbox: ">"}, count=10)
    assert len(read[0][1]) == 2
    flusher = OutboxFlusher(
        redis=redis_client,
        keys=keys,
        pg_conninfo=settings.psycopg_url,
        batch_size=50,
        flush_interval_s=0.05,
        claim_idle_ms=200,
    )
    stage(redis_client, keys, batch("c", 30))

    def drained() -> bool:
        flusher.step()
        return redis_client.xlen(keys.outbox) == 0

    wait_for(drained, 10, interval=0.05, what="outbox drained")
    stored = stored_ticks(settings.pg_url)
    assert set(stored) == {f"{p}-{i}" for p in "abc" for i in range(30)}
    assert redis_client.xpending(keys.outbox, OUTBOX_GROUP)["pending"] == 0
    stats = {k.decode(): float(v) for k, v in redis_client.hgetall(keys.stats).items()}
    assert stats["rows_written"] == 90 and stats["flush_ticks_sum"] == 90
    flusher.stop()


def test_rewriting_a_batch_inserts_nothing(settings: Settings):
    ticks = batch("r", 25)
    with psycopg.connect(settings.psycopg_url) as conn:
        assert write_ticks(conn, ticks) == 25
        assert write_ticks(conn, ticks + ticks) == 0  # also duplicates within one batch
        changed = [t._replace(price=999.0) for t in ticks]
        assert write_ticks(conn, changed) == 0  # first write wins
    stored = stored_ticks(settings.pg_url)
    assert len(stored) == 25 and all(row[2] != 999.0 for row in stored.values())


def test_flusher_holds_its_batch_while_postgres_is_unreachable(
    settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    OutboxStream(redis_client, keys).ensure_group()
    stage(redis_client, keys, batch("d", 10))
    flusher = OutboxFlusher(
        redis=redis_client,
        keys=keys,
        pg_conninfo="postgresql://postgres@127.0.0.1:9/none",
        batch_size=10,
        flush_interval_s=0.05,
        claim_idle_ms=100,
    )
    for _ in range(5):
        flusher.step()
    assert redis_client.xlen(keys.outbox) == 1  # still staged
    assert len(flusher._pending_ticks) == 10  # not re-claimed into duplicates while retrying
    flusher.pg_conninfo = settings.psycopg_url
    wait_for(
        lambda: (flusher.step(), redis_client.xlen(keys.outbox) == 0)[1],
        15,
        what="written after recovery",
    )
    assert len(stored_ticks(settings.pg_url)) == 10
