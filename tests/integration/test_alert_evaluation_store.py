"""The evaluation store and calc's observations on a real Redis, without worker processes: what
calc records (nothing without rules), a redelivered evaluation, a poison entry, deleted rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from redis import Redis

from backend.bus.alert_evaluation import (
    ALERTS_BAD_OBSERVATIONS,
    ALERTS_OBSERVATIONS,
    AlertEvaluationStore,
    StaleRules,
)
from backend.bus.alert_rules import AlertRuleMirror, RulesCache
from backend.bus.keys import ALERTS_EVALUATE_QUEUE, Keys
from backend.bus.realtime import Ring
from backend.core.alerts.conditions import Observation, RuleIndex
from backend.core.alerts.observations import decode_observations, encode_observations
from backend.core.ticks import Tick
from backend.settings import Settings
from tasks.calc import CalcContext, apply_batch
from tests.support.alerts import make_rule

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000
NOW_US = T0 + 5_000_000


def clock() -> int:
    return NOW_US


def obs(i: int, price: float) -> Observation:
    return Observation(
        kind="tick", ts_us=T0 + i, event_id=f"e{i}", values={"last_price": price}, price=price
    )


def calc(settings: Settings, redis: Redis, rules: RulesCache | None) -> CalcContext:
    return CalcContext(
        redis=redis, keys=Keys.from_settings(settings), ring=Ring.from_settings(settings),
        done_ttl_s=settings.dedup_ttl, stale_after_s=settings.stale_after, rules=rules,
    )  # fmt: skip


def ticks(symbol: str, prices: list[float], start: int = 0) -> list[Tick]:
    return [
        Tick(f"{symbol}-{start + i}", symbol, T0 + (start + i) * 1_000, p, 1.0, "s", None, T0)
        for i, p in enumerate(prices)
    ]


def test_calc_records_observations_only_for_watched_symbols(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    mirror = AlertRuleMirror(redis_client, keys)
    mirror.put(make_rule("r", "WATCHED"))
    off = calc(settings, redis_client, None)
    apply_batch(off, "m0", ticks("WATCHED", [1.0]), NOW_US)
    assert redis_client.xlen(keys.alert_observations("WATCHED")) == 0  # alerts off: nothing

    on = calc(settings, redis_client, RulesCache(mirror, refresh_s=0.5))
    batch = ticks("WATCHED", [3.0, 2.0], start=1) + ticks("QUIET", [1.0])
    assert apply_batch(on, "m1", batch, NOW_US)
    assert not apply_batch(on, "m1", batch, NOW_US)  # a redelivered calc message: nothing
    apply_batch(on, "m3", [Tick("late", "WATCHED", T0 - 1, 50.0, 1.0, "s", None, T0)], NOW_US)
    entries = redis_client.xrange(keys.alert_observations("WATCHED"))
    seen = [o for _, fields in entries for o in decode_observations(fields[b"o"])]
    assert len(entries) == 2  # one entry per committed transaction
    assert [(o.kind, o.event_id) for o in seen] == [
        ("tick", "WATCHED-1"), ("tick", "WATCHED-2"), ("view", "WATCHED-2"),  # m1
        ("view", "WATCHED-2"),  # m3: the late tick is no tick observation; the view changed
    ]  # fmt: skip
    assert [o.values.get("last_price") for o in seen[:2]] == [3.0, 2.0]
    assert seen[2].values["trades_1m"] == 3.0 and seen[3].values["trades_1m"] == 4.0
    assert redis_client.xlen(keys.alert_observations("QUIET")) == 0
    queued = redis_client.lrange(keys.queue_list(ALERTS_EVALUATE_QUEUE), 0, -1)
    assert len(queued) == 2  # one evaluation message per committed transaction of WATCHED


def test_a_redelivered_evaluation_fires_nothing_twice(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    store = AlertEvaluationStore(redis_client, keys, Ring.from_settings(settings), batch=2)
    stream = keys.alert_observations("S")
    for i, price in enumerate([99.0, 101.0, 99.0, 102.0, 98.0]):
        redis_client.xadd(stream, {"o": encode_observations([obs(i, price)])})
    index = RuleIndex([make_rule("up", "S", condition="crosses_above", value=100.0)])
    assert store.drain("S", index, clock) == 2  # in batches of 2: three transactions
    assert store.drain("S", index, clock) == 0  # the redelivery finds the memory moved on
    assert redis_client.xlen(stream) == 0
    assert int(redis_client.hget(keys.stats, ALERTS_OBSERVATIONS) or 0) == 5
    memory = store.read_memory("S")
    assert memory.memory.prev == {"last_price": 98.0} and set(memory.memory.rules) == {"up"}
    redis_client.xadd(stream, {"o": encode_observations([obs(9, 103.0)])})
    assert store.drain("S", index, clock) == 1  # continues from the cursor


def test_a_poison_observation_is_skipped_and_counted(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    store = AlertEvaluationStore(redis_client, keys, Ring.from_settings(settings))
    stream = keys.alert_observations("P")
    redis_client.xadd(stream, {"o": encode_observations([obs(0, 99.0)])})
    redis_client.xadd(stream, {"o": b"{not json"})
    redis_client.xadd(stream, {"x": b"no o field"})
    redis_client.xadd(stream, {"o": orjson.dumps({"kind": "tick"})})
    redis_client.xadd(stream, {"o": encode_observations([obs(4, 101.0)])})
    index = RuleIndex([make_rule("up", "P", condition="crosses_above", value=100.0)])
    assert store.drain("P", index, clock) == 1
    assert int(redis_client.hget(keys.stats, ALERTS_BAD_OBSERVATIONS) or 0) == 3
    assert redis_client.xlen(stream) == 0


def test_memory_of_a_deleted_rule_is_dropped(settings: Settings, redis_client: Redis) -> None:
    keys = Keys.from_settings(settings)
    store = AlertEvaluationStore(redis_client, keys, Ring.from_settings(settings))
    stream = keys.alert_observations("D")
    a, b = make_rule("a", "D", trigger="once"), make_rule("b", "D", trigger="once")
    redis_client.xadd(stream, {"o": encode_observations([obs(0, 99.0)])})
    redis_client.xadd(stream, {"o": encode_observations([obs(1, 101.0)])})
    assert store.drain("D", RuleIndex([a, b]), clock) == 2
    assert set(store.read_memory("D").memory.rules) == {"a", "b"}
    redis_client.xadd(stream, {"o": encode_observations([obs(2, 99.0)])})
    redis_client.xadd(stream, {"o": encode_observations([obs(3, 101.0)])})
    assert store.drain("D", RuleIndex([a]), clock) == 0  # `a` is done (once), `b` is gone
    assert set(store.read_memory("D").memory.rules) == {"a"}


def test_a_once_rule_edited_after_firing_can_fire_again(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    store = AlertEvaluationStore(redis_client, keys, Ring.from_settings(settings))
    stream = keys.alert_observations("O")
    rule = make_rule("once", "O", trigger="once")
    for i, price in enumerate([99.0, 101.0, 99.0, 101.0]):
        redis_client.xadd(stream, {"o": encode_observations([obs(i, price)])})
    assert store.drain("O", RuleIndex([rule]), clock) == 1
    edited = rule.model_copy(update={"version": 2, "value": 102.0})
    for i, price in enumerate([101.0, 103.0], start=4):
        redis_client.xadd(stream, {"o": encode_observations([obs(i, price)])})
    assert store.drain("O", RuleIndex([edited]), clock) == 1
    assert store.read_memory("O").versions == {"once": 2}


def test_an_expired_rule_never_fires(settings: Settings, redis_client: Redis) -> None:
    keys = Keys.from_settings(settings)
    store = AlertEvaluationStore(redis_client, keys, Ring.from_settings(settings))
    stream = keys.alert_observations("X")
    expires = datetime.fromtimestamp(NOW_US / 1_000_000, UTC)
    expired = make_rule("expired", "X", expires_at=expires)
    live = make_rule("live", "X", expires_at=expires + timedelta(seconds=1))
    for i, price in enumerate([99.0, 101.0]):
        redis_client.xadd(stream, {"o": encode_observations([obs(i, price)])})
    fired = store.drain("X", RuleIndex([expired, live]), clock)  # now == the first's expiry
    assert fired == 1


def test_a_worker_with_older_rules_reloads_instead_of_refiring(
    settings: Settings, redis_client: Redis
) -> None:
    """Two workers' rule caches can hold different versions for up to ALERT_RULES_REFRESH_S. A
    `once` rule fired and was disabled (version 2, read at mirror version 5); a worker still
    holding version 1 (mirror version 4) must not take the memory's version-2 state for an edit
    and fire the rule again: it reloads and evaluates with the newer rules."""
    keys = Keys.from_settings(settings)
    store = AlertEvaluationStore(redis_client, keys, Ring.from_settings(settings))
    stream = keys.alert_observations("V")
    once = make_rule("once", "V", condition="above", value=100.0, trigger="once")
    disabled = once.model_copy(update={"version": 2, "enabled": False})
    redis_client.xadd(stream, {"o": encode_observations([obs(0, 101.0)])})
    assert store.drain("V", RuleIndex([once], version=4), clock) == 1
    redis_client.xadd(stream, {"o": encode_observations([obs(1, 99.0)])})
    assert store.drain("V", RuleIndex([disabled], version=5), clock) == 0
    redis_client.xadd(stream, {"o": encode_observations([obs(2, 102.0)])})
    stale = RuleIndex([once], version=4)  # still enabled, version 1: would fire afresh
    with pytest.raises(StaleRules):
        store.drain("V", stale, clock)
    reloads: list[int] = []

    def reload() -> RuleIndex:
        reloads.append(1)
        return RuleIndex([disabled], version=5)

    assert store.drain("V", stale, clock, reload=reload) == 0
    assert reloads == [1]
    assert store.read_memory("V").rules_version == 5
