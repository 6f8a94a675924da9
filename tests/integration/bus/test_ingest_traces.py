"""The ingest script carries each request's trace id with its accepted ticks, once per id."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from dramatiq import Message
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.bus.ingest import IngestScript, Status
from backend.bus.keys import Keys
from backend.core.ticks import Tick, decode_tick
from backend.settings import Settings

pytestmark = pytest.mark.integration

A, B, C = "a" * 32, "b" * 32, "c" * 32


def tick(event_id: str) -> Tick:
    return Tick(event_id, "AAA", 1_700_000_000_000_000, 1.5, 2.0, "s", None, 7)


def run(settings: Settings, ticks: list[Tick], spans: list[tuple[str, int]]) -> list[Status]:
    async def main() -> list[Status]:
        redis = AsyncRedis.from_url(settings.effective_redis_url)
        try:
            script = IngestScript(redis, Keys.from_settings(settings), dedup_ttl=60)
            return [outcome.status for outcome in await script(ticks, spans)]
        finally:
            await redis.aclose()

    return asyncio.run(main())


def test_message_and_outbox_name_the_trace_ids_of_the_accepted_ticks_only(
    settings: Settings, redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    keys = Keys.from_settings(settings)
    assert run(settings, [tick("dup-b"), tick("dup-c")], [(B, 1), (C, 1)]) == [
        Status.ACCEPTED, Status.ACCEPTED
    ]  # fmt: skip
    redis_client.delete(keys.queue_list(), keys.queue_messages(), keys.outbox)
    # Request A: 2 ticks (one new); B: 1 duplicate; A again (a client reusing its trace): 1 new;
    # C: a duplicate; an untraced request ("") with a new tick.
    ticks = [tick("a1"), tick("dup-b"), tick("dup-b"), tick("a2"), tick("dup-c"), tick("u1")]
    spans = [(A, 2), (B, 1), (A, 1), (C, 1), ("", 1)]
    with caplog.at_level(logging.INFO, logger="backend.bus.ingest"):
        caplog.clear()  # only this commit's line (the set-up commit may be logged too)
        statuses = run(settings, ticks, spans)
    assert statuses == [Status.ACCEPTED, Status.DUPLICATE, Status.DUPLICATE, Status.ACCEPTED,
                        Status.DUPLICATE, Status.ACCEPTED]  # fmt: skip

    [message_id] = redis_client.lrange(keys.queue_list(), 0, -1)
    message = Message.decode(redis_client.hget(keys.queue_messages(), message_id))
    ticks_arg, traces_arg = message.args
    assert [decode_tick(t).event_id for t in ticks_arg] == ["a1", "a2", "u1"]
    assert traces_arg == [A]  # distinct, and only requests with an accepted tick
    [(_, fields)] = redis_client.xrange(keys.outbox)
    assert orjson.loads(fields[b"r"]) == [A]
    assert [decode_tick(t).event_id for t in orjson.loads(fields[b"t"])] == ["a1", "a2", "u1"]

    # One line per commit, naming every request's trace id (duplicates' too: their ingest).
    [record] = [r for r in caplog.records if r.getMessage().startswith("ingest commit")]
    assert record.trace_ids == [A, B, C]  # type: ignore[attr-defined]
    assert record.message_id == message.message_id  # type: ignore[attr-defined]
    assert (record.accepted, record.duplicates, record.requests) == (3, 3, 5)  # type: ignore[attr-defined]


def test_ticks_without_trace_spans_still_form_a_calc_message(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    assert run(settings, [tick("n1")], []) == [Status.ACCEPTED]
    [message_id] = redis_client.lrange(keys.queue_list(), 0, -1)
    message = Message.decode(redis_client.hget(keys.queue_messages(), message_id))
    assert message.args[1] == [] and len(message.args[0]) == 1
