"""Every Lua script of Tickstream, each in its own `.lua` file beside this module, behind a typed
wrapper that takes named arguments (KEYS and ARGV positions are this module's business only).

Two ways to run a script:
- on its own (ingest, requeue, prune): `register_script`, i.e. EVALSHA with a fall-back to EVAL
  when the server does not have it yet;
- queued inside a caller's MULTI (outbox ack, counters, view write): plain EVAL. Inside MULTI a
  NOSCRIPT error would fail that one command while the rest of the transaction applied, so these
  always send the source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis


@cache
def source(name: str) -> str:
    """The code of `<name>.lua` (shipped as package data next to this module) without its
    comment lines: scripts queued in MULTI are sent whole with every EVAL."""
    text = files("backend.bus").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


# --- ingest (standalone, EVALSHA) -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IngestReply:
    """What the ingest script answered: the backlog it shed the batch at, or one status per tick
    (1 accepted, 2 duplicate, else what the first write stored: a conflict; its content digest,
    or a pre-upgrade key's content JSON)."""

    shed_at_backlog: int | None
    statuses: list[int | bytes]


@dataclass(frozen=True, slots=True)
class DedupTick:
    """One tick as the ingest script sees it (backend/core/dedup.py)."""

    shard: int
    id_digest: bytes
    content_digest: bytes
    event_id: str
    content: bytes  # JSON: compared with a pre-upgrade key's value
    encoded: bytes


class IngestLua:
    def __init__(self, redis: AsyncRedis) -> None:
        self._script = redis.register_script(source("ingest"))

    async def __call__(
        self,
        *,
        queue_list: str,
        queue_messages: str,
        outbox: str,
        stats: str,
        generation: int,
        live_generations: int,
        expire_s: int,
        dedup_prefix: str,
        legacy_marker: str,
        legacy_prefix: str,
        max_backlog: int,
        message_id: str,
        message_head: bytes,
        message_tail: bytes,
        ticks: Sequence[DedupTick],
        trace_spans: Sequence[tuple[str, int]] = (),
    ) -> IngestReply:
        """`trace_spans`: (trace id, how many ticks) per request, in the ticks' order."""
        args: list[bytes | str | int] = [
            generation, message_id, message_head, message_tail, dedup_prefix, max_backlog,
            live_generations, expire_s, legacy_marker, legacy_prefix, len(trace_spans),
        ]  # fmt: skip
        for trace_id, count in trace_spans:
            args += (trace_id, count)
        for t in ticks:
            args += (t.shard, t.id_digest, t.content_digest, t.event_id, t.content, t.encoded)
        raw = await self._script(keys=[queue_list, queue_messages, outbox, stats], args=args)
        if isinstance(raw, int):
            return IngestReply(shed_at_backlog=raw, statuses=[])
        return IngestReply(shed_at_backlog=None, statuses=list(raw))


# --- dead letters, feeder registry (standalone, EVALSHA) ------------------------------------------
async def requeue_dead_letter(
    redis: AsyncRedis,
    *,
    dead_letters: str,
    dead_letter_messages: str,
    queue_list: str,
    queue_messages: str,
    reasons: str,
    stats: str,
    message_id: str,
    expected_body: bytes,
    new_body: bytes,
    ticks: int,
) -> bool:
    """Move one dead letter back to its queue; False if its body changed since it was read."""
    script = redis.register_script(source("dead_letter_requeue"))
    moved = await script(
        keys=[dead_letters, dead_letter_messages, queue_list, queue_messages, reasons, stats],
        args=[message_id, expected_body, new_body, ticks],
    )
    return bool(moved)


async def hdel_if_unchanged(redis: AsyncRedis, *, key: str, expected: Mapping[bytes, bytes]) -> int:
    """Delete the fields of hash `key` that still hold the expected values; how many were."""
    if not expected:
        return 0
    script = redis.register_script(source("hash_compare_and_delete"))
    args = [part for item in expected.items() for part in item]
    return int(await script(keys=[key], args=args))


# --- calc coalescing (standalone, EVALSHA; sync: calc runs in Dramatiq threads) ------------------
class CalcClaimTake:
    """Claim up to `max_messages` calc messages (at most `max_bytes` of bodies) queued at the
    head of the queue into `acks`, stopping at a solo one; (which of `main_redis_ids` are solo,
    [(redis id, body)]). See calc_claim.lua."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(source("calc_claim"))

    def __call__(
        self,
        *,
        queue_list: str,
        queue_messages: str,
        acks: str,
        heartbeats: str,
        solo: str,
        now_ms: int,
        worker_id: str,
        max_messages: int,
        max_bytes: int,
        main_redis_ids: Sequence[str],
    ) -> tuple[list[bool], list[tuple[str, bytes]]]:
        flags, *flat = self._script(
            keys=[queue_list, queue_messages, acks, heartbeats, solo],
            args=[now_ms, worker_id, max_messages, max_bytes, *main_redis_ids],
        )
        it = iter(flat)
        pairs = zip(it, it, strict=True)
        return [bool(f) for f in flags], [(redis_id.decode(), body) for redis_id, body in pairs]


class CalcClaimSettle:
    """Ack (`release=False`: delete) or release (back on the queue, marked solo for `solo_ttl_s`)
    claimed calc messages still in `acks`. See calc_claim_settle.lua."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(source("calc_claim_settle"))

    def __call__(
        self,
        *,
        acks: str,
        queue_messages: str,
        queue_list: str,
        solo: str,
        release: bool,
        solo_ttl_s: int,
        redis_ids: Sequence[str],
    ) -> None:
        self._script(
            keys=[acks, queue_messages, queue_list, solo],
            args=["release" if release else "ack", solo_ttl_s, *redis_ids],
        )


# --- webhook host slots (standalone, EVALSHA; sync: the delivery worker is a Dramatiq thread) ----
class HostSlotAcquire:
    """Take one of a host's `limit` delivery slots as a lease until `expires_ms` (expired leases
    are dropped first; a slot reserved under `token` is taken as is), or, if every slot is held,
    park `entry` on the host's list and count it; True if a slot was taken."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(source("host_slot_acquire"))

    def __call__(
        self,
        *,
        slots: str,
        parked: str,
        parked_hosts: str,
        stats: str,
        now_ms: int,
        expires_ms: int,
        limit: int,
        token: str,
        host: str,
        entry: bytes,
        parked_counter: str,
    ) -> bool:
        return bool(
            self._script(
                keys=[slots, parked, parked_hosts, stats],
                args=[now_ms, expires_ms, limit, token, host, entry, parked_counter],
            )
        )


class HostSlotRelease:
    """Release `token`'s slot (none for `token=""`) and move as many of the host's parked jobs
    onto the deliver queue as it has free slots, each with a slot reserved; how many moved."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(source("host_slot_release"))

    def __call__(
        self,
        *,
        slots: str,
        parked: str,
        parked_hosts: str,
        queue_list: str,
        queue_messages: str,
        stats: str,
        token: str,
        now_ms: int,
        expires_ms: int,
        limit: int,
        host: str,
        unparked_counter: str,
    ) -> int:
        return int(
            self._script(
                keys=[slots, parked, parked_hosts, queue_list, queue_messages, stats],
                args=[token, now_ms, expires_ms, limit, host, unparked_counter],
            )
        )


async def replace_alert_rules(
    redis: AsyncRedis, *, rules: str, version: str, if_version: int, mapping: Mapping[str, bytes]
) -> bool:
    """Replace the rules mirror with `mapping`; False (nothing changed) if its version is no
    longer `if_version`."""
    script = redis.register_script(source("alert_rules_replace"))
    args: list[str | bytes | int] = [if_version]
    for rule_id, rule_json in mapping.items():
        args += (rule_id, rule_json)
    return bool(await script(keys=[rules, version], args=args))


# --- queued inside a caller's MULTI (EVAL) --------------------------------------------------------
def queue_hincrby_many(pipe: Any, *, key: str, increments: Mapping[str, int]) -> bool:
    """Queue, as one command, HINCRBY of every non-zero increment; False if none was queued."""
    flat = [part for name, value in increments.items() if value for part in (name, value)]
    if flat:
        pipe.eval(source("hincrby_many"), 1, key, *flat)
    return bool(flat)


def queue_outbox_ack(
    pipe: Any, *, outbox: str, stats: str, group: str, entries: Sequence[tuple[bytes, int]]
) -> None:
    """Queue XACK + XDEL of `entries` (id, ticks it carries); its reply (`int`) is the number of
    ticks taken off `outbox_ticks`."""
    args: list[bytes | int | str] = [group]
    for entry_id, ticks in entries:
        args += (entry_id, ticks)
    pipe.eval(source("outbox_ack"), 2, outbox, stats, *args)


def queue_alert_rule_put(
    pipe: Any, *, rules: str, version: str, rule_id: str, rule_json: bytes, rule_version: int
) -> None:
    """Queue a version-guarded put of a rule into the mirror; its reply is 1 if written, 0 if
    the mirror held that version or a newer one."""
    pipe.eval(source("alert_rule_put"), 2, rules, version, rule_id, rule_json, rule_version)


def view_order(last_ts_us: int, last_event_id: str) -> str:
    """A view's position in event order as a string whose plain order is event order."""
    return f"{max(last_ts_us, 0):020d}:{last_event_id}"


def queue_view_write(
    pipe: Any,
    *,
    view_key: str,
    symbols_key: str,
    order_key: str,
    symbol: str,
    order: str,
    view_json: bytes,
    now_us: int,
    ring_key: str,
    ring_cap: int,
    event: bytes,
) -> None:
    """Queue the guarded view write (SET view, HSET symbols, XADD `symbol.updated` to the
    realtime ring), refused when the stored view is newer; its reply is 1 if written, 0 if
    refused."""
    pipe.eval(
        source("view_write"), 4, view_key, symbols_key, order_key, ring_key,
        symbol, order, view_json, now_us, ring_cap, event,
    )  # fmt: skip


# --- under WATCH, immediate (EVAL) ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CalcStepRead:
    applied: tuple[bool, ...]  # per batch of the step: has it already applied the symbol?
    raw_state: bytes | None
    fenced: bool = False  # a rebuild of the symbol is under way
    known: bool = False  # the symbol has a view (the view-order hash names it)
    sealed: bool = False  # a rebuild's swap asks calc to wait
    # The window read at `cutoff_us` (None: not read): its (member, score) pairs at or before the
    # cutoff, and the first one after it.
    cutoff_us: int | None = None
    upto: list[tuple[bytes, float]] = field(default_factory=list)
    first_after: list[tuple[bytes, float]] = field(default_factory=list)

    @property
    def already_applied(self) -> bool:
        """Every batch of the step has applied the symbol: nothing is left to do."""
        return all(self.applied)


def read_calc_step(
    pipe: Any,
    *,
    done_markers: Sequence[str],
    state: str,
    fence: str,
    view_order: str,
    seal: str,
    window: str,
    symbol: str,
    cutoff_us: int | None = None,
) -> CalcStepRead:
    """On a WATCHing pipeline (immediate mode): each batch's marker for `symbol`, the state, the
    rebuild fence's existence, whether the symbol has a view, whether a swap sealed it, and the
    window around `cutoff_us`."""
    raw, fenced, known, sealed, upto, first, *done = pipe.eval(
        source("calc_read_step"), 5 + len(done_markers), state, fence, view_order, seal, window,
        *done_markers, symbol, "" if cutoff_us is None else cutoff_us,
    )  # fmt: skip
    return CalcStepRead(
        applied=tuple(bool(d) for d in done), raw_state=raw, fenced=bool(fenced),
        known=bool(known), sealed=bool(sealed), cutoff_us=cutoff_us,
        upto=_with_scores(upto), first_after=_with_scores(first),
    )  # fmt: skip


def _with_scores(flat: list[bytes]) -> list[tuple[bytes, float]]:
    """A Lua reply of ZRANGE…WITHSCORES (member, score as a string, …) as (member, score)."""
    it = iter(flat)
    return [(member, float(score)) for member, score in zip(it, it, strict=True)]


def read_rebuild_swap(
    pipe: Any, *, fence: str, message_hashes: Sequence[str]
) -> tuple[dict[bytes, bytes] | None, list[bytes]]:
    """On a WATCHing pipeline (immediate mode), at one instant: the rebuild fence (None if it
    is gone) and the bodies of every message in `message_hashes` (a queue's msgs, its delay
    queue's and its dead letters'). One script, because a message moves between those hashes
    (a retry, a delayed message coming due) and two reads could miss it in both."""
    raw_fence, bodies = pipe.eval(source("rebuild_swap_read"), 1 + len(message_hashes), fence,
                                  *message_hashes)  # fmt: skip
    if not raw_fence:
        return None, list(bodies)
    it = iter(raw_fence)
    return dict(zip(it, it, strict=True)), list(bodies)
