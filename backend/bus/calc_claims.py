"""calc coalescing's Redis side: take the calc messages queued behind the one being applied.

A worker applying calc message M also claims the messages right behind it in the queue, so one
step applies them all with one transaction per symbol (tasks/calc_coalescing.py). Claiming is
exactly what Dramatiq's own fetch does: each id moves from the queue list into the worker's
ack set, so a worker that dies holding them gives them back when its heartbeat stops (Dramatiq's
maintenance), and calc's done-markers make that redelivery harmless. Applied messages are acked
like Dramatiq acks them (deleted); messages a step could not apply are released to the queue and
marked solo, so that they next run on their own, through Dramatiq's retries and dead letters.

The scripts use Dramatiq's key layout (its namespace, `<queue>`, `<queue>.msgs`,
`__acks__.<worker id>.<queue>`, `__heartbeats__`), like the ingest script's enqueue does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from backend.bus.keys import Keys
from backend.bus.lua import CalcClaimSettle, CalcClaimTake

# How long a message stays marked solo after it failed in a shared step: far longer than it
# waits in the queue before running on its own.
SOLO_TTL_S = 3_600


@dataclass(frozen=True, slots=True)
class Claimed:
    redis_id: str  # the message's id in the queue (Dramatiq's `redis_message_id`)
    body: bytes  # the encoded Dramatiq message


@dataclass(frozen=True, slots=True)
class Claim:
    solo: frozenset[str]  # the mains that failed in a shared step before: each runs alone
    messages: list[Claimed]


class CalcClaims:
    """Claim, ack and release calc messages in a worker's Dramatiq ack set."""

    def __init__(self, redis: Redis, keys: Keys, *, max_messages: int, max_bytes: int) -> None:
        self._keys = keys
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._take = CalcClaimTake(redis)
        self._settle = CalcClaimSettle(redis)

    @property
    def enabled(self) -> bool:
        return self._max_messages > 0

    def take(self, worker_id: str, main_redis_ids: Sequence[str], now_ms: int) -> Claim:
        """Claim the calc messages queued behind the mains in hand (see calc_claim.lua)."""
        keys = self._keys
        flags, messages = self._take(
            queue_list=keys.queue_list(), queue_messages=keys.queue_messages(),
            acks=keys.worker_acks(worker_id), heartbeats=keys.heartbeats, solo=keys.calc_solo,
            now_ms=now_ms, worker_id=worker_id, max_messages=self._max_messages,
            max_bytes=self._max_bytes, main_redis_ids=main_redis_ids,
        )  # fmt: skip
        solo = frozenset(i for i, flag in zip(main_redis_ids, flags, strict=True) if flag)
        return Claim(solo, [Claimed(redis_id, body) for redis_id, body in messages])

    def ack(self, worker_id: str, redis_ids: Sequence[str]) -> None:
        """The messages were applied: delete them (Dramatiq's ack)."""
        self._run_settle(worker_id, redis_ids, release=False)

    def release(self, worker_id: str, redis_ids: Sequence[str]) -> None:
        """The messages were not (all) applied: back on the queue, each to run on its own."""
        self._run_settle(worker_id, redis_ids, release=True)

    def _run_settle(self, worker_id: str, redis_ids: Sequence[str], *, release: bool) -> None:
        if not redis_ids:
            return
        keys = self._keys
        self._settle(
            acks=keys.worker_acks(worker_id), queue_messages=keys.queue_messages(),
            queue_list=keys.queue_list(), solo=keys.calc_solo, release=release,
            solo_ttl_s=SOLO_TTL_S, redis_ids=redis_ids,
        )  # fmt: skip
