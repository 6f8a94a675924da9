"""The ingest hand-off: de-duplicate, enqueue and stage for Postgres in ONE atomic Redis step.

A single Lua script, per group-committed batch, does for every tick `SET dedup NX`; then, for the
ticks that were new, writes ONE Dramatiq message carrying all of them (the same HSET + RPUSH that
Dramatiq's own `enqueue` does) and ONE outbox stream entry. Because it is one script, there is no
moment at which a tick is marked seen but not queued: an acknowledged tick is always both queued
for calc and staged for persistence. The pipeline-wide ingest counters (`ingest_accepted`,
`ingest_duplicate`, `ingest_conflict` in the stats hash) are added in the same step, so they
count exactly what was acknowledged, whichever API replica answered.

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
from backend.core.ticks import Tick, encode_content, encode_tick

INGEST_LUA = """
local ttl = tonumber(ARGV[1])
local prefix = ARGV[5]
local max_backlog = tonumber(ARGV[6])
if max_backlog > 0 then
  local c = redis.call('HMGET', KEYS[4], 'ingest_accepted', 'calc_ticks', 'outbox_ticks',
                       'calc_dead_ticks')
  local waiting_calc = (tonumber(c[1]) or 0) - (tonumber(c[2]) or 0) - (tonumber(c[4]) or 0)
  local waiting_store = tonumber(c[3]) or 0
  local backlog = math.max(waiting_calc, 0) + math.max(waiting_store, 0)
  if backlog >= max_backlog then
    redis.call('HINCRBY', KEYS[4], 'ingest_shed', (#ARGV - 6) / 3)
    return backlog
  end
end
local statuses = {}
local accepted = {}
local duplicates = 0
local conflicts = 0
for i = 7, #ARGV, 3 do
  local key = prefix .. ARGV[i]
  local content = ARGV[i + 1]
  if redis.call('SET', key, content, 'NX', 'EX', ttl) then
    accepted[#accepted + 1] = ARGV[i + 2]
    statuses[#statuses + 1] = 1
  else
    local existing = redis.call('GET', key)
    if existing == content then
      statuses[#statuses + 1] = 2
      duplicates = duplicates + 1
    else
      statuses[#statuses + 1] = existing
      conflicts = conflicts + 1
    end
  end
end
if #accepted > 0 then
  local body = table.concat(accepted, ',')
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. body .. ARGV[4])
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('XADD', KEYS[3], '*', 't', '[' .. body .. ']')
  redis.call('HINCRBY', KEYS[4], 'ingest_accepted', #accepted)
  redis.call('HINCRBY', KEYS[4], 'outbox_ticks', #accepted)
end
if duplicates > 0 then
  redis.call('HINCRBY', KEYS[4], 'ingest_duplicate', duplicates)
end
if conflicts > 0 then
  redis.call('HINCRBY', KEYS[4], 'ingest_conflict', conflicts)
end
return statuses
"""


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
    """Runs INGEST_LUA for a batch of already validated ticks."""

    def __init__(self, redis: Redis, keys: Keys, dedup_ttl: int, max_backlog: int = 0) -> None:
        self._redis = redis
        self._keys = keys
        self._dedup_ttl = dedup_ttl
        self._max_backlog = max_backlog  # 0: never shed
        self._script = redis.register_script(INGEST_LUA)

    async def __call__(self, ticks: Sequence[Tick]) -> list[Outcome]:
        if not ticks:
            return []
        message_id = str(uuid.uuid4())
        head, tail = dramatiq_message_parts(
            self._keys.queue_name, message_id, int(time.time() * 1000)
        )
        args: list[bytes | str | int] = [
            self._dedup_ttl,
            message_id,
            head,
            tail,
            self._keys.dedup_prefix,
            self._max_backlog,
        ]
        for tick in ticks:
            args += (tick.event_id, encode_content(tick), encode_tick(tick))
        keys = [
            self._keys.queue_list(),
            self._keys.queue_messages(),
            self._keys.outbox,
            self._keys.stats,
        ]
        raw = await self._script(keys=keys, args=args)
        if isinstance(raw, int):  # the script shed the batch: checked and refused atomically
            raise BacklogFull(raw)
        return [_outcome(item) for item in raw]


def _outcome(item: int | bytes) -> Outcome:
    if item == 1:
        return Outcome(Status.ACCEPTED)
    if item == 2:
        return Outcome(Status.DUPLICATE)
    return Outcome(Status.CONFLICT, stored_content=bytes(item))
