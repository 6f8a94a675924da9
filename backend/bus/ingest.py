"""The ingest hand-off: de-duplicate, enqueue and stage for Postgres in ONE atomic Redis step.

A single Lua script (`ingest.lua`), per group-committed batch, looks every tick's event_id digest up
in the compact de-dup memory (backend/core/dedup.py: digests in generation x shard hashes) and
writes the new ones into the current generation; then, for the ticks that were new, writes ONE
Dramatiq message carrying all of them (the same HSET + RPUSH that Dramatiq's own `enqueue` does) and
ONE outbox stream entry. Because it is one script, there is no moment at which a tick is marked seen
but not queued: an acknowledged tick is always both queued for calc and staged for persistence. The
pipeline-wide ingest counters (`ingest_accepted`, `ingest_duplicate`, `ingest_conflict` in the stats
hash) are added in the same step, so they count exactly what was acknowledged, whichever API replica
answered.

Backpressure counts ticks, not hand-offs (one hand-off carries 1 to thousands of ticks): ticks
waiting for calc are `ingest_accepted - calc_ticks - calc_dead_ticks` (calc adds to `calc_ticks`
in the transaction that applies a batch, once per batch; a dead-lettered batch is not waiting, it
needs an operator, so it moves to `calc_dead_ticks` until requeued), ticks waiting for Postgres
are `outbox_ticks` (added here,
taken off by the flusher in the step that deletes the entries it wrote). At `MAX_BACKLOG` waiting
ticks the script refuses the whole batch before writing anything.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import orjson
from redis.asyncio import Redis

from backend.bus.dedup import prepare_dedup
from backend.bus.keys import CALC_ACTOR, Keys
from backend.bus.lua import DedupTick, IngestLua
from backend.core.dedup import (
    DEFAULT_GENERATIONS,
    DEFAULT_SHARDS,
    VALUE_BYTES,
    DedupLayout,
    content_digest,
    differing_fields_by_digest,
    id_digest,
)
from backend.core.ticks import Tick, differing_fields, encode_content, encode_tick
from backend.log_context import trace_fields

log = logging.getLogger(__name__)


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
    # for conflicts: the content fields that differ from the first write's (where told)
    differing: tuple[str, ...] = ()


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
    """Runs `ingest.lua` for a batch of already validated ticks.

    `clock` (epoch seconds) places each batch in a de-dup generation; tests inject it to cross
    generation boundaries.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        dedup_ttl: int,
        max_backlog: int = 0,
        *,
        generations: int = DEFAULT_GENERATIONS,
        shards: int = DEFAULT_SHARDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._layout = DedupLayout(ttl_s=dedup_ttl, generations=generations, shards=shards)
        self._max_backlog = max_backlog  # 0: never shed
        self._clock = clock
        self._script = IngestLua(redis)
        self._redis = redis
        self._prepared = False

    async def prepare(self) -> None:
        """The de-dup start-up step (backend/bus/dedup.py), once; before any ingest."""
        if not self._prepared:
            await prepare_dedup(self._redis, self._keys, self._layout)
            self._prepared = True

    @property
    def layout(self) -> DedupLayout:
        return self._layout

    async def __call__(
        self, ticks: Sequence[Tick], trace_spans: Sequence[tuple[str, int]] = ()
    ) -> list[Outcome]:
        """`trace_spans`: (trace id, how many ticks) per request, in the ticks' order."""
        if not ticks:
            return []
        await self.prepare()
        now = self._clock()
        layout = self._layout
        generation = layout.generation(now)
        message_id = str(uuid.uuid4())
        head, tail = dramatiq_message_parts(self._keys.queue_name, message_id, int(now * 1000))
        prepared = [_prepare(t, layout.shards) for t in ticks]
        reply = await self._script(
            queue_list=self._keys.queue_list(),
            queue_messages=self._keys.queue_messages(),
            outbox=self._keys.outbox,
            stats=self._keys.stats,
            generation=generation,
            live_generations=layout.live_generations(),
            expire_s=layout.expire_s(generation, now),
            dedup_prefix=self._keys.dedup_hashes(layout.tag),
            legacy_marker=self._keys.dedup_legacy_marker,
            legacy_prefix=self._keys.dedup_prefix,
            max_backlog=self._max_backlog,
            message_id=message_id,
            message_head=head,
            message_tail=tail,
            ticks=prepared,
            trace_spans=trace_spans,
        )
        if reply.shed_at_backlog is not None:  # checked and refused atomically
            log.info(
                "ingest commit shed: %d ticks refused at backlog %d",
                len(ticks), reply.shed_at_backlog,
                extra={"ticks": len(ticks), "backlog": reply.shed_at_backlog,
                       **trace_fields(trace_id for trace_id, _ in trace_spans)},
            )  # fmt: skip
            raise BacklogFull(reply.shed_at_backlog)
        outcomes = [
            _outcome(item, tick, p.content_digest)
            for item, tick, p in zip(reply.statuses, ticks, prepared, strict=True)
        ]
        _log_commit(message_id, outcomes, trace_spans)
        return outcomes


def _prepare(tick: Tick, shards: int) -> DedupTick:
    shard, field = id_digest(tick.event_id, shards)
    return DedupTick(
        shard=shard,
        id_digest=field,
        content_digest=content_digest(tick),
        event_id=tick.event_id,
        content=encode_content(tick),
        encoded=encode_tick(tick),
    )


def _log_commit(
    message_id: str, outcomes: list[Outcome], trace_spans: Sequence[tuple[str, int]]
) -> None:
    """The batch's one INFO line (per group commit, never per tick)."""
    if not log.isEnabledFor(logging.INFO):
        return
    counts = {status: 0 for status in Status}
    for outcome in outcomes:
        counts[outcome.status] += 1
    accepted = counts[Status.ACCEPTED]
    log.info(
        "ingest commit: %d ticks (%d accepted) from %d requests%s",
        len(outcomes), accepted, len(trace_spans),
        f", queued as {message_id}" if accepted else "",
        extra={
            **({"message_id": message_id} if accepted else {}), "ticks": len(outcomes),
            "accepted": accepted, "duplicates": counts[Status.DUPLICATE],
            "conflicts": counts[Status.CONFLICT], "requests": len(trace_spans),
            **trace_fields(trace_id for trace_id, _ in trace_spans),
        },
    )  # fmt: skip


def _outcome(item: int | bytes, tick: Tick, digest: bytes) -> Outcome:
    if item == 1:
        return Outcome(Status.ACCEPTED)
    if item == 2:
        return Outcome(Status.DUPLICATE)
    stored = bytes(item)  # type: ignore[arg-type]
    if len(stored) == VALUE_BYTES:  # a content digest (JSON content is always longer)
        named = differing_fields_by_digest(stored, digest)
    else:  # a pre-upgrade key: the content itself
        named = differing_fields(stored, tick)
    return Outcome(Status.CONFLICT, differing=tuple(named))
