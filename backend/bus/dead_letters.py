"""Dramatiq's dead-letter queues, read and requeued from the API.

A message that fails after its retries is moved by the Redis broker to `<queue>.XQ` (a sorted set
of ids by time) with its body in `<queue>.XQ.msgs`; the worker's `DeadLetterReasons` middleware
records why in `Keys.dead_letter_reasons`. Requeueing puts the same message (same message_id, so
calc's done-marker still makes it idempotent) back on its queue with its retry count reset, in
one Lua step per message (`dead_letter_requeue.lua`) that only moves it if nobody changed it
meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import orjson
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.bus import ledger
from backend.bus.keys import CALC_ACTOR, Keys
from backend.bus.lua import requeue_dead_letter

# Ticks of dead-lettered calc batches: not waiting for calc any more, so not in the backlog.
DEAD_TICKS_FIELD = ledger.CALC_DEAD_TICKS


def dead_letter_ticks(
    actor_name: str | None, args: Any, applied_symbols: Collection[str] = ()
) -> int:
    """How many ticks of a calc batch message are still waiting for calc (0 for any other
    message): calc applies a batch symbol by symbol, so a batch that failed on one symbol may
    have applied others (`applied_symbols`, from its done-marker hash)."""
    if actor_name != CALC_ACTOR or not isinstance(args, list | tuple) or not args:
        return 0
    if not isinstance(args[0], list):
        return 0
    if not applied_symbols:
        return len(args[0])
    return sum(
        1 for t in args[0] if not (isinstance(t, list) and len(t) > 1 and t[1] in applied_symbols)
    )


def applied_symbols(raw_fields: Iterable[bytes | str]) -> set[str]:
    """The symbols named by a calc done-marker hash (HKEYS)."""
    return {f.decode() if isinstance(f, bytes) else f for f in raw_fields}


def reason_record(
    exception: BaseException | None, traceback_text: str | None, now_ms: int
) -> bytes:
    """What the worker stores about a dead-lettered message (pure)."""
    error = f"{type(exception).__name__}: {exception}" if exception is not None else None
    if error is None and traceback_text:
        error = traceback_text.strip().splitlines()[-1]
    return orjson.dumps(
        {"error": (error or "unknown")[:500], "traceback": (traceback_text or "")[-4000:],
         "failed_at_ms": now_ms}
    )  # fmt: skip


def describe(
    queue: str, message_id: str, raw: bytes | None, score_ms: float, reason: bytes | None
) -> dict[str, Any]:
    """One dead letter for the API: who, when, why, and what it carried (pure)."""
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {}
    options = body.get("options") or {}
    args = body.get("args") or []
    first = args[0] if args else None
    why: dict[str, Any] = {}
    if reason:
        try:
            why = orjson.loads(reason)
        except orjson.JSONDecodeError:
            why = {}
    traceback_text = why.get("traceback") or options.get("traceback") or ""
    last_line = traceback_text.strip().splitlines()[-1] if traceback_text.strip() else None
    error = why.get("error") or last_line
    return {
        "message_id": message_id,
        "queue": queue,
        "actor": body.get("actor_name"),
        "dead_lettered_at_ms": int(score_ms),
        "retries": options.get("retries", 0),
        "items": len(first) if isinstance(first, list) else None,
        "reason": error or "unknown (no reason recorded)",
        "traceback": traceback_text[-2000:] or None,
        "readable": bool(body),
    }


def reset_for_retry(raw: bytes) -> bytes:
    """The message body with its retry bookkeeping cleared (orjson keeps floats exact)."""
    body = orjson.loads(raw)
    options = body.setdefault("options", {})
    for name in ("retries", "traceback", "requeue_timestamp", "eta"):
        options.pop(name, None)
    options["requeued_at_ms"] = int(time.time() * 1000)
    options["requeues"] = int(options.get("requeues", 0)) + 1
    return orjson.dumps(body)


class DeadLetters:
    """The dead letters of the calc queues, for the admin routes."""

    def __init__(self, redis: AsyncRedis, keys: Keys, queues: Sequence[str]) -> None:
        self._redis = redis
        self._keys = keys
        self.queues = tuple(queues)

    async def count(self) -> int:
        """Dead letters across every queue."""
        total = 0
        for queue in self.queues:
            total += await self._redis.zcard(self._keys.dead_letters(queue))
        return total

    async def list(self, limit: int) -> list[dict[str, Any]]:
        """Newest first, across the queues, at most `limit`."""
        redis, keys = self._redis, self._keys
        found: list[tuple[float, str, str]] = []
        for queue in self.queues:
            entries = await redis.zrevrange(keys.dead_letters(queue), 0, limit - 1, withscores=True)
            found += [(score, queue, member.decode()) for member, score in entries]
        found.sort(reverse=True)
        out = []
        for score, queue, message_id in found[:limit]:
            raw = await redis.hget(keys.dead_letter_messages(queue), message_id)
            reason = await redis.hget(keys.dead_letter_reasons, message_id)
            out.append(describe(queue, message_id, raw, score, reason))
        return out

    async def requeue(self, message_ids: Iterable[str] | None) -> dict[str, list[str]]:
        """Move dead letters (all, or the given ids) back to their queues, and count them
        (`dead_letters_requeued`)."""
        redis, keys = self._redis, self._keys
        wanted = None if message_ids is None else set(message_ids)
        requeued: list[str] = []
        for queue in self.queues:
            ids = [m.decode() for m in await redis.zrange(keys.dead_letters(queue), 0, -1)]
            for message_id in ids:
                if wanted is not None and message_id not in wanted:
                    continue
                raw = await redis.hget(keys.dead_letter_messages(queue), message_id)
                if raw is None:
                    continue
                try:
                    new = reset_for_retry(raw)
                    body = orjson.loads(raw)
                    # The marker is named after the Dramatiq message id; the dead-letter list
                    # holds the broker's per-enqueue id (a retry gets a new one).
                    calc_id = str(body.get("message_id") or message_id)
                    done = applied_symbols(await redis.hkeys(keys.calc_done(calc_id)))
                    ticks = dead_letter_ticks(body.get("actor_name"), body.get("args"), done)
                except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                    continue  # unreadable: leave it for a human
                moved = await requeue_dead_letter(
                    redis,
                    dead_letters=keys.dead_letters(queue),
                    dead_letter_messages=keys.dead_letter_messages(queue),
                    queue_list=keys.queue_list(queue),
                    queue_messages=keys.queue_messages(queue),
                    reasons=keys.dead_letter_reasons,
                    stats=keys.stats,
                    message_id=message_id,
                    expected_body=raw,
                    new_body=new,
                    ticks=ticks,
                )
                if moved:
                    requeued.append(message_id)
        if requeued:
            await redis.hincrby(keys.stats, ledger.DEAD_LETTERS_REQUEUED, len(requeued))
        missing = sorted((wanted or set()) - set(requeued))
        return {"requeued": requeued, "not_found": missing}


class DeadLetterRecorder:
    """The worker's side: why a message was dead-lettered, and its ticks out of the backlog."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def record(self, message_id: str, actor_name: str | None, args: Any, reason: bytes) -> None:
        """Store `reason`, keep the batch's done-marker, move its unapplied ticks out of the
        backlog (`calc_dead_ticks`), in one MULTI. Raises RedisError."""
        marker = self._keys.calc_done(message_id)
        # The symbols the batch did apply: their ticks are not waiting, and the marker that says
        # so must outlive the dead letter (a requeue after its TTL would apply them twice). The
        # requeued batch's next applied symbol sets the TTL again.
        done = applied_symbols(self._redis.hkeys(marker))
        ticks = dead_letter_ticks(actor_name, args, done)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.dead_letter_reasons, message_id, reason)
            if done:
                pipe.persist(marker)
            if ticks:  # no longer waiting for calc: out of the backlog until requeued
                pipe.hincrby(self._keys.stats, DEAD_TICKS_FIELD, ticks)
            pipe.execute()
