"""The alert history flusher and `write_history` against real Redis and PostgreSQL: a firing is
stored once however often its records are written, a delivery's state never moves backwards, a
`once` rule is disabled (in PostgreSQL and in the workers' mirror) by its firing, and a dead
flusher's entries are claimed and written."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.bus.alert_firings import queue_history
from backend.bus.alert_rules import AlertRuleMirror, AsyncAlertRuleMirror
from backend.bus.keys import ALERT_HISTORY_GROUP, Keys
from backend.core.alerts.firing import Firing, FiringTick, firing_id
from backend.core.alerts.records import DeliveryRecord, DeliveryStatus, FiredRecord
from backend.core.alerts.rules import AlertRule
from backend.settings import Settings
from backend.storage import alerts_repo
from backend.storage.alerts_repo import write_history
from tasks.alert_history import AlertHistoryFlusher
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
AT = "2026-12-04T10:00:00Z"
NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)


def make_rule(rule_id: str = "r1", trigger: str = "once") -> AlertRule:
    return AlertRule.model_validate(
        {
            "id": rule_id, "version": 1, "created_at": NOW, "updated_at": NOW, "name": "n",
            "symbol": "HIST", "field": "last_price", "condition": "crosses_above", "value": 10.0,
            "trigger": trigger,
        }
    )  # fmt: skip


def fired(rule: AlertRule, key: str, *, version: int = 1) -> FiredRecord:
    firing = Firing(
        alert_id=firing_id(rule.id, key), rule_id=rule.id, rule_version=version,
        rule_name=rule.name, symbol=rule.symbol, field=rule.field, condition=rule.condition,
        value=rule.value, observed=11.0, tick=FiringTick(ts=AT, event_id=key, price=11.0),
        firing_key=key, fired_at=AT,
    )  # fmt: skip
    return FiredRecord(
        firing=firing,
        channels=["ui", "https://example.org/h"],
        disable_rule=rule.trigger == "once",
        committed_at=AT,
    )


def delivery(alert_id: str, status: DeliveryStatus, attempts: int, error: str | None = None):
    return DeliveryRecord(
        alert_id=alert_id, channel="https://example.org/h", status=status, attempts=attempts,
        last_error=error, at=AT,
    )  # fmt: skip


async def _create(settings: Settings, rule: AlertRule) -> None:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_url) as conn:
        await alerts_repo.create_rule(conn, rule)


async def _get(settings: Settings, rule_id: str) -> AlertRule | None:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_url) as conn:
        return await alerts_repo.get_rule(conn, rule_id)


async def _events(settings: Settings, **filters):
    async with await psycopg.AsyncConnection.connect(settings.psycopg_url) as conn:
        return await alerts_repo.list_events(conn, **filters)


def test_rewriting_history_changes_nothing_and_deliveries_never_move_backwards(
    settings: Settings,
):
    rule = make_rule(trigger="every_time")
    record = fired(rule, "k1")
    alert_id = record.firing.alert_id
    batch = [
        record,
        delivery(alert_id, "pending", 0),
        delivery(alert_id, "retrying", 2, "timeout"),
        delivery(alert_id, "retrying", 1, "older"),  # out of order: attempts only grow
    ]
    with psycopg.connect(settings.psycopg_url) as conn:
        assert write_history(conn, batch) == []
        assert write_history(conn, batch + batch) == []  # a re-written (claimed) batch
        write_history(conn, [delivery(alert_id, "dead", 8, "gave up")])
        write_history(conn, [delivery(alert_id, "retrying", 9), delivery(alert_id, "pending", 0)])
    [event] = asyncio.run(_events(settings, rule_id=rule.id))
    assert event.alert_id == alert_id and event.firing_key == "k1" and event.observed == 11.0
    by_channel = {d.channel: d for d in event.deliveries}
    assert set(by_channel) == {"ui", "https://example.org/h"}
    hook = by_channel["https://example.org/h"]
    assert (hook.status, hook.attempts, hook.last_error) == ("dead", 8, "gave up")
    assert by_channel["ui"].status == "pending"  # from the fired record's channels
    with psycopg.connect(settings.psycopg_url) as conn:
        write_history(conn, [DeliveryRecord(alert_id=alert_id, channel="ui", status="delivered",
                                            attempts=1, latency_ms=0.0, at=AT)])  # fmt: skip
    [event] = asyncio.run(_events(settings, symbol="HIST", since=NOW))
    assert {d.channel: d.status for d in event.deliveries}["ui"] == "delivered"
    assert asyncio.run(_events(settings, symbol="OTHER")) == []


def test_a_once_rule_is_disabled_by_its_firing_and_not_again_after_a_change(
    settings: Settings,
):
    rule = make_rule()
    asyncio.run(_create(settings, rule))
    record = fired(rule, "k1")
    with psycopg.connect(settings.psycopg_url) as conn:
        [disabled] = write_history(conn, [record])
        assert (disabled.id, disabled.enabled, disabled.version) == (rule.id, False, 2)
        # Written again (the mirror write was lost): the same rule again, for the mirror.
        [again] = write_history(conn, [record])
        assert again == disabled
    stored = asyncio.run(_get(settings, rule.id))
    assert stored is not None and (stored.enabled, stored.version) == (False, 2)
    # The user enables it again (version 3): an old record re-written leaves it alone.
    enabled = stored.model_copy(update={"enabled": True, "version": 3})

    async def update() -> None:
        async with await psycopg.AsyncConnection.connect(settings.psycopg_url) as conn:
            assert await alerts_repo.update_rule(conn, enabled)

    asyncio.run(update())
    with psycopg.connect(settings.psycopg_url) as conn:
        assert write_history(conn, [record]) == []
    stored = asyncio.run(_get(settings, rule.id))
    assert stored is not None and (stored.enabled, stored.version) == (True, 3)


def test_dead_flushers_entries_are_claimed_written_once_and_the_mirror_follows(
    settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    rule = make_rule()
    asyncio.run(_create(settings, rule))
    mirror = AlertRuleMirror(redis_client, keys)
    mirror.put(rule)
    flusher = AlertHistoryFlusher(
        redis=redis_client, keys=keys, pg_conninfo=settings.psycopg_url,
        flush_interval_s=0.05, claim_idle_ms=200,
    )  # fmt: skip
    flusher.step()  # creates the group
    record = fired(rule, "k1")
    with redis_client.pipeline(transaction=True) as pipe:
        queue_history(pipe, keys, record)
        queue_history(pipe, keys, record)  # a redelivered evaluation queued it twice
        pipe.execute()
    # Another flusher reads both and dies before writing them.
    read = redis_client.xreadgroup(ALERT_HISTORY_GROUP, "dead", {keys.alert_history: ">"})
    assert len(read[0][1]) == 2
    with redis_client.pipeline(transaction=True) as pipe:
        queue_history(pipe, keys, delivery(record.firing.alert_id, "delivered", 1))
        pipe.execute()

    def drained() -> bool:
        flusher.step()
        return redis_client.xlen(keys.alert_history) == 0

    wait_for(drained, 10, interval=0.05, what="history drained")
    assert redis_client.xpending(keys.alert_history, ALERT_HISTORY_GROUP)["pending"] == 0
    [event] = asyncio.run(_events(settings))
    assert {d.channel: d.status for d in event.deliveries}["https://example.org/h"] == "delivered"
    _, [mirrored] = mirror.load()
    assert (mirrored.enabled, mirrored.version) == (False, 2)
    flusher.stop()


def test_flusher_holds_its_batch_while_postgres_is_unreachable(
    settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    rule = make_rule(trigger="every_time")
    flusher = AlertHistoryFlusher(
        redis=redis_client, keys=keys, pg_conninfo="postgresql://postgres@127.0.0.1:9/none",
        flush_interval_s=0.05, claim_idle_ms=100,
    )  # fmt: skip
    with redis_client.pipeline(transaction=True) as pipe:
        for i in range(5):
            queue_history(pipe, keys, fired(rule, f"k{i}"))
        pipe.execute()
    for _ in range(5):
        flusher.step()
    assert redis_client.xlen(keys.alert_history) == 5  # still there
    assert len(flusher._pending) == 5  # not re-claimed into duplicates while retrying
    flusher.pg_conninfo = settings.psycopg_url
    wait_for(
        lambda: (flusher.step(), redis_client.xlen(keys.alert_history) == 0)[1],
        15,
        what="written after recovery",
    )
    assert len(asyncio.run(_events(settings))) == 5


def test_the_mirror_keeps_the_newest_version_whatever_order_the_writers_land_in(
    settings: Settings, redis_client: Redis
):
    keys = Keys.from_settings(settings)
    mirror = AlertRuleMirror(redis_client, keys)
    v1 = make_rule()
    v3 = v1.model_copy(update={"version": 3, "name": "newest"})
    v2 = v1.model_copy(update={"version": 2, "enabled": False})
    mirror.put(v1)
    mirror.put(v3)
    version = mirror.version()
    mirror.put(v2)  # e.g. the flusher's `once` disable landing after the user's PATCH
    mirror.put(v3)  # the same version again: nothing to do
    _, [held] = mirror.load()
    assert (held.version, held.name, held.enabled) == (3, "newest", True)
    assert mirror.version() == version  # no worker reloads for nothing


def test_a_mirror_replace_from_an_older_snapshot_is_refused(settings: Settings):
    """The API's start-up sync read PostgreSQL before a rule was created; the create's put moved
    the version since, so replacing from that snapshot would undo it: refused."""
    created = make_rule("created-meanwhile")

    async def scenario() -> tuple[bool, bool, set[str]]:
        redis = AsyncRedis.from_url(settings.effective_redis_url)
        mirror = AsyncAlertRuleMirror(redis, Keys.from_settings(settings))
        seen = await mirror.version()  # the sync reads the version, then PostgreSQL (empty)
        await mirror.put(created)  # a route's create lands in between
        stale = await mirror.replace_all([], if_version=seen)
        fresh = await mirror.replace_all([created], if_version=await mirror.version())
        held = {
            rule_id.decode()
            for rule_id in await redis.hkeys(Keys.from_settings(settings).alert_rules)
        }
        await redis.aclose()
        return stale, fresh, held

    stale, fresh, held = asyncio.run(scenario())
    assert (stale, fresh, held) == (False, True, {"created-meanwhile"})
