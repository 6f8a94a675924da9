"""The ingest hand-off: de-duplicate, enqueue and stage for Postgres in ONE atomic Redis step.

A single Lua script (`ingest.lua`), per group-committed batch, does for every tick `SET dedup NX`;
then, for the ticks that were new, writes ONE Dramatiq message carrying all of them (the same HSET +
RPUSH that Dramatiq's own `enqueue` does) and ONE outbox stream entry. Because it is one script,
there is no moment at which a tick is marked seen but not queued: an acknowledged tick is always
both queued for calc and staged for persistence. The pipeline-wide ingest counters
(`ingest_accepted`, `ingest_duplicate`, `ingest_conflict` in the stats hash) are added in the same
step, so they count exactly what was acknowledged, whichever API replica answered.

Backpressure counts ticks, not hand-offs (one hand-off carries 1 to thousands of ticks): ticks
waiting for calc are `ingest_accepted - calc_ticks - calc_dead_ticks` (calc adds to `calc_ticks`
in the transaction that applies a batch, once per batch; a dead-lettered batch is not waiting, it
needs an operator, so it moves to `calc_dead_ticks` until requeued), ticks waiting for Postgres
are `outbox_ticks` (added here,
taken off by the flusher in the step that deletes the entries it wrote). At `MAX_BACKLOG` waiting
ticks the script refuses the whole batch before writing anything.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import orjson
from redis.asyncio import Redis

from backend.bus.keys import CALC_ACTOR, Keys
from backend.bus.lua import IngestLua
from backend.core.ticks import Tick, encode_content, encode_tick


class BacklogFull(Exception):
    """The ticks waiting (for calc + for Postgres) are at MAX_BACKLOG: nothing was written."""

    def __init__(self, backlog: int) -> None:
        super().__init__(f"backlog {backlog} at the high-water mark")
        self.backlog = backlog


class Status(Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    stored_content: bytes | None = None  # for conflicts: what the first write stored


def dramatiq_message_parts(
    queue_name: str, message_id: str, now_ms: int, actor_name: str = CALC_ACTOR
) -> tuple[bytes, bytes]:
    """Prefix and suffix of a Dramatiq message whose single arg is a JSON list.

    The ingest script splices the accepted ticks between them, so the message is only built for
    the ticks that turned out to be new. The layout is Dramatiq's `Message.encode()` (JSON).
    """
    head = orjson.dumps({"queue_name": queue_name, "actor_name": actor_name})
    tail = orjson.dumps(
        {
            "kwargs": {},
            "options": {"redis_message_id": message_id},
            "message_id": message_id,
            "message_timestamp": now_ms,
        }
    )
    return head[:-1] + b',"args":[[', b"]]," + tail[1:]


class IngestScript:
    """Runs `ingest.lua` for a batch of already validated ticks."""

    def __init__(self, redis: Redis, keys: Keys, dedup_ttl: int, max_backlog: int = 0) -> None:
        self._keys = keys
        self._dedup_ttl = dedup_ttl
        self._max_backlog = max_backlog  # 0: never shed
        self._script = IngestLua(redis)

    async def __call__(self, ticks: Sequence[Tick]) -> list[Outcome]:
        if not ticks:
            return []
        message_id = str(uuid.uuid4())
        head, tail = dramatiq_message_parts(
            self._keys.queue_name, message_id, int(time.time() * 1000)
        )
        reply = await self._script(
            queue_list=self._keys.queue_list(),
            queue_messages=self._keys.queue_messages(),
            outbox=self._keys.outbox,
            stats=self._keys.stats,
            dedup_ttl_s=self._dedup_ttl,
            dedup_prefix=self._keys.dedup_prefix,
            max_backlog=self._max_backlog,
            message_id=message_id,
            message_head=head,
            message_tail=tail,
            ticks=[(t.event_id, encode_content(t), encode_tick(t)) for t in ticks],
        )
        if reply.shed_at_backlog is not None:  # checked and refused atomically
            raise BacklogFull(reply.shed_at_backlog)
        return [_outcome(item) for item in reply.statuses]


def _outcome(item: int | bytes) -> Outcome:
    if item == 1:
        return Outcome(Status.ACCEPTED)
    if item == 2:
        return Outcome(Status.DUPLICATE)
    return Outcome(Status.CONFLICT, stored_content=bytes(item))
