"""The replay driver: stored ticks, in (ts, event_id) order, through the live calc and alert code,
into the replay's own namespace, paced on event time.

One driver message runs one slice (`REPLAY_SLICE_S` of work), then commits a continuation for the
next step in the same transaction as its last progress, so a long replay is a chain of short
messages: a worker that dies mid-slice loses nothing but the slice's uncommitted tail, and the
redelivered message goes on from the last committed group. Exactly once, group by group:

- the group after a committed cursor is a function of that cursor and the stored ticks alone
  (`backend.core.replay.groups`), so a rerun cuts the same group;
- calc applies it with the done-marker `replay:<cursor>`, per symbol, so a rerun skips what a dead
  driver already applied;
- sandboxed evaluation drains the replay's observation streams from their stored cursors;
- the commit that moves the record's cursor past the group merges its candles, and only a driver
  whose record still names that cursor can make it.

Nothing here reads the wall clock or sleeps on its own: `clock_us` and `sleep` come in, so the
pacing is tested on a fake clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from redis import Redis

from backend.bus.alert_evaluation import AlertEvaluationStore, record_sandbox_firing
from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.bus.replay_progress import ReplayProgressStore, Superseded
from backend.core.alerts.conditions import RuleIndex
from backend.core.alerts.rules import AlertRule
from backend.core.replay import (
    Anchor,
    Cursor,
    ReplayRecord,
    due_at,
    group_width_us,
    groups,
    rebased,
)
from backend.core.ticks import Tick
from backend.storage.history_reads import count_ticks, ticks_after
from tasks.calc import CalcContext, apply_batch

log = logging.getLogger(__name__)

REBASE_SLACK_US = 1_000_000  # later than this behind schedule: carry on from here, don't rush
CONTROL_POLL_S = 0.25  # while waiting for a group's time: how often a pause or cancel is seen
RING_CAP = 1_000  # a replay's private ring (nobody reads it live; kept small)


class SandboxRules:
    """The rules a replay backtests, as calc and evaluation ask for them: every one enabled and
    never expired (a backtest judges the rule, not whether it is switched on today)."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        parsed = [
            AlertRule.model_validate(r | {"enabled": True, "expires_at": None}) for r in rules
        ]
        by_symbol: dict[str, list[AlertRule]] = {}
        for rule in parsed:
            by_symbol.setdefault(rule.symbol, []).append(rule)
        self._indexes = {symbol: RuleIndex(rs) for symbol, rs in by_symbol.items()}
        self._empty = RuleIndex([])

    def watched(self, symbol: str) -> bool:
        return symbol in self._indexes

    def rules_for(self, symbol: str) -> RuleIndex:
        return self._indexes.get(symbol, self._empty)


@dataclass(frozen=True)
class ReplayEnv:
    """What a driver needs from its process: connections, settings, and time."""

    redis: Redis
    keys: Keys  # the live namespace (records, the live ring for progress)
    ring: Ring  # the live ring: `replay.progress` only
    connect: Callable[[], psycopg.Connection[Any]]
    ttl_s: int
    slice_s: float
    stale_after_s: float
    yield_backlog: int  # live ticks waiting for calc above which a replay gives way (0: never)
    clock_us: Callable[[], int]
    sleep: Callable[[float], None]


def run_slice(env: ReplayEnv, replay_id: str, generation: int, step: int) -> ReplayRecord | None:
    """Drive replay `replay_id` for one slice, if this message is its driver; the record it
    leaves (None: the message was stale and did nothing)."""
    store = ReplayProgressStore(env.redis, env.keys, env.ring, env.ttl_s)
    record = store.begin(replay_id, generation, step, env.clock_us())
    if record is None:
        return None
    try:
        return _drive(env, store, record)
    except Superseded:
        log.info("replay %s: another driver moved on; this one stops", replay_id)
        return None
    except psycopg.OperationalError:
        raise  # PostgreSQL unreachable: Dramatiq retries the message, the replay waits
    except Exception as exc:
        log.exception("replay %s failed", replay_id)
        latest = store.load(replay_id) or record
        return store.commit(
            latest,
            {"state": "failed", "error": f"{type(exc).__name__}: {exc}"[:500],
             "finished_us": env.clock_us()},
            now_us=env.clock_us(),
        )  # fmt: skip


def _drive(env: ReplayEnv, store: ReplayProgressStore, record: ReplayRecord) -> ReplayRecord:
    replay_keys = env.keys.for_replay(record.id)
    ring = Ring(key=replay_keys.private_ring, max_events=RING_CAP)
    sandbox = SandboxRules(record.rules) if record.alerts == "sandbox" else None
    calc = CalcContext(
        redis=env.redis,
        keys=replay_keys,
        ring=ring,
        done_ttl_s=env.ttl_s,
        stale_after_s=env.stale_after_s,
        rules=sandbox,
        notify_evaluation=False,
        rebuild_lost_state=False,
    )
    evaluation = (
        AlertEvaluationStore(env.redis, replay_keys, ring, on_firing=record_sandbox_firing)
        if sandbox is not None
        else None
    )
    deadline = env.clock_us() + int(env.slice_s * 1_000_000)
    with env.connect() as conn:
        if record.ticks_total is None:
            total = count_ticks(conn, record.symbols, record.from_us, record.to_us)
            record = store.commit(record, {"ticks_total": total}, now_us=env.clock_us())
        after = (record.cursor.ts_us, record.cursor.event_id) if record.cursor else None
        read = [record.ticks_applied]
        stream = _counted(
            ticks_after(conn, record.symbols, record.from_us, record.to_us, after),
            record.ticks_applied,
            read,
        )
        width = group_width_us(record.speed)
        for group in groups(stream, record.from_us, width):
            record, go_on = _wait_until_due(env, store, record, group, deadline)
            if go_on:
                record, go_on = _give_way_to_live(env, store, record, deadline)
            if not go_on:
                return record
            record = _apply_group(env, store, calc, evaluation, sandbox, record, group, read[0])
            if record.state != "running":
                return record
            if env.clock_us() >= deadline:
                return store.commit(record, {}, send_next=True, now_us=env.clock_us())
        now = env.clock_us()
        return store.commit(record, {"state": "done", "finished_us": now}, now_us=now)


def _wait_until_due(
    env: ReplayEnv,
    store: ReplayProgressStore,
    record: ReplayRecord,
    group: list[Tick],
    deadline: int,
) -> tuple[ReplayRecord, bool]:
    """Sleep until `group` is due (its last tick's time at `speed`), watching for controls;
    (the record, whether to apply the group now)."""
    now = env.clock_us()
    anchor = record.anchor or Anchor(event_us=group[0].ts_us, wall_us=now)
    anchor = rebased(anchor, group[0].ts_us, now, record.speed, REBASE_SLACK_US)
    if anchor != record.anchor:
        record = store.commit(record, {"anchor": anchor}, now_us=now)
    due = due_at(anchor, group[-1].ts_us, record.speed)
    while (now := env.clock_us()) < due:
        if now >= deadline:  # hand over: the next message waits out the rest
            return store.commit(record, {}, send_next=True, now_us=now), False
        env.sleep(min(CONTROL_POLL_S, (due - now) / 1_000_000))
        latest = store.load(record.id)
        if latest is not None and latest.wanted in ("paused", "cancelled"):
            return store.commit(record, {}, now_us=env.clock_us()), False
    return record, True


def _give_way_to_live(
    env: ReplayEnv, store: ReplayProgressStore, record: ReplayRecord, deadline: int
) -> tuple[ReplayRecord, bool]:
    """Wait while live calc is behind (more than `yield_backlog` live ticks waiting for it): a
    replay is never why live views are late. `REPLAY_NICE` gives live the CPU; this gives it
    Redis and PostgreSQL, which a niced process still loads at full priority. (the record,
    whether to apply the next group now)"""
    if env.yield_backlog <= 0:
        return record, True
    while store.live_calc_backlog() > env.yield_backlog:
        now = env.clock_us()
        if now >= deadline:
            return store.commit(record, {}, send_next=True, now_us=now), False
        env.sleep(CONTROL_POLL_S / 5)
        latest = store.load(record.id)
        if latest is not None and latest.wanted in ("paused", "cancelled"):
            return store.commit(record, {}, now_us=env.clock_us()), False
    return record, True


def _apply_group(
    env: ReplayEnv,
    store: ReplayProgressStore,
    calc: CalcContext,
    evaluation: AlertEvaluationStore | None,
    sandbox: SandboxRules | None,
    record: ReplayRecord,
    group: list[Tick],
    ticks_read: int,
) -> ReplayRecord:
    """calc (and the sandbox) over `group`, then the commit that moves the cursor past it."""
    start = record.cursor
    marker = f"replay:{start.ts_us}:{start.event_id}" if start is not None else "replay:start"
    now = env.clock_us()
    apply_batch(calc, marker, group, now)
    firings = record.firings
    if evaluation is not None and sandbox is not None:
        for symbol in sorted({t.symbol for t in group}):
            if sandbox.watched(symbol):
                evaluation.drain(symbol, sandbox.rules_for(symbol), env.clock_us)
        firings = int(env.redis.llen(calc.keys.sandbox_firings))
    last = group[-1]
    applied = record.ticks_applied + len(group)
    return store.commit(
        record,
        {
            "cursor": Cursor(ts_us=last.ts_us, event_id=last.event_id),
            "ticks_applied": applied,
            "ticks_read": max(ticks_read, applied),
            "firings": firings,
        },
        group=group,
        done_marker=marker,
        now_us=env.clock_us(),
    )


def _counted(ticks: Iterator[Tick], start: int, counter: list[int]) -> Iterator[Tick]:
    """`ticks`, keeping `counter[0]` = `start` + how many were read (the status's ticks_read)."""
    counter[0] = start
    for tick in ticks:
        counter[0] += 1
        yield tick
