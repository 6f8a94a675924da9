"""Webhook delivery through the real system: firings queued exactly as the evaluator queues them
(`queue_firing` in a MULTI), the delivery worker as `make run` starts it (its own process), and
real HTTP receivers in this process. Assertions are on what receivers got and on the counters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name
from redis import Redis

from backend.bus.alert_delivery import (
    ALERTS_DELIVERED,
    ALERTS_DELIVERY_DEAD,
    ALERTS_DELIVERY_FAILED,
    ALERTS_DELIVERY_PARKED,
    ALERTS_DELIVERY_RETRIES,
    ALERTS_DELIVERY_UNPARKED,
    DELIVERY_LATENCY_PREFIX,
)
from backend.bus.keys import ALERTS_DELIVER_QUEUE, ALERTS_DELIVER_RETRY_QUEUE, Keys
from backend.core.alerts.firing import verify, webhook_body
from backend.core.alerts.records import DeliveryJob
from backend.settings import Settings
from tasks.actors import register_actors
from tests.support.processes import Processes
from tests.support.waiting import wait_for
from tests.support.webhooks import (
    endless_body,
    first_then,
    garbage,
    gate,
    queue_webhook_firings,
    receiving,
    redirect_forever,
    refused_url,
    sleeper,
    status,
    trickle,
)

pytestmark = pytest.mark.integration

SECRET = "a-webhook-secret-of-some-length"
HOST_SLOTS = "2"


def counters(redis: Redis, settings: Settings) -> dict[str, int]:
    raw = redis.hgetall(Keys.from_settings(settings).stats)
    return {k.decode(): int(float(v)) for k, v in raw.items()}


def counter_at_least(redis: Redis, settings: Settings, name: str, n: int):
    return lambda: counters(redis, settings).get(name, 0) >= n


@pytest.fixture
def start(procs: Processes) -> Iterator[object]:
    def start_worker(**env: str) -> None:
        procs.start_delivery_worker(extra_env=env)

    yield start_worker


def test_calc_worker_does_not_consume_deliveries(settings: Settings, redis_client: Redis):
    """A slow receiver can only take delivery threads: calc's worker never declares the queue."""
    broker = StubBroker()
    register_actors(broker, settings, redis_client)
    declared = broker.get_declared_queues()
    assert ALERTS_DELIVER_QUEUE not in declared and ALERTS_DELIVER_RETRY_QUEUE not in declared


def test_delivered_once_signed_under_the_alert_id(settings, redis_client, start):
    with receiving(status(200)) as receiver:
        start()
        (firing,) = queue_webhook_firings(redis_client, settings, receiver.url, secret=SECRET)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERED, 1), 30, what="sent")
        (got,) = receiver.snapshot()
    assert got.key == firing.alert_id
    assert got.body == webhook_body(firing)
    assert verify(got.body, SECRET, got.headers["x-tickstream-signature"])
    assert not verify(got.body, SECRET + "x", got.headers["x-tickstream-signature"])
    assert got.headers["content-type"] == "application/json"
    stats = counters(redis_client, settings)
    assert stats[DELIVERY_LATENCY_PREFIX + "+Inf"] == 1
    assert stats.get(ALERTS_DELIVERY_RETRIES, 0) == 0


def test_a_5xx_is_retried_under_the_same_idempotency_key(settings, redis_client, start):
    with receiving(first_then(status(500), status(200))) as receiver:
        start()
        (firing,) = queue_webhook_firings(redis_client, settings, receiver.url)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERED, 1), 30, what="sent")
        got = receiver.snapshot()
    assert [r.key for r in got] == [firing.alert_id, firing.alert_id]
    assert got[0].body == got[1].body
    assert counters(redis_client, settings)[ALERTS_DELIVERY_RETRIES] == 1


def test_429_retry_after_is_honoured(settings, redis_client, start):
    with receiving(first_then(status(429, {"Retry-After": "2"}), status(200))) as receiver:
        start()
        queue_webhook_firings(redis_client, settings, receiver.url)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERED, 1), 30, what="sent")
        first, second = receiver.snapshot()
    assert second.key == first.key
    assert second.at - first.at >= 2.0  # not before the receiver asked (no upper bound)


def test_a_4xx_is_final(settings, redis_client, start):
    with receiving(status(400)) as receiver:
        start()
        queue_webhook_firings(redis_client, settings, receiver.url)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERY_FAILED, 1), 30)
        assert len(receiver.snapshot()) == 1  # recorded after the attempt: no retry was sent
    stats = counters(redis_client, settings)
    assert stats.get(ALERTS_DELIVERY_RETRIES, 0) == 0 and stats.get(ALERTS_DELIVERED, 0) == 0


def test_after_max_attempts_the_delivery_is_dead(settings, redis_client, start):
    with receiving(status(500)) as receiver:
        start(ALERT_MAX_ATTEMPTS="3")
        (firing,) = queue_webhook_firings(redis_client, settings, receiver.url)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERY_DEAD, 1), 30)
        got = receiver.snapshot()  # dead is recorded after the last attempt: no more come
    assert [r.key for r in got] == [firing.alert_id] * 3
    stats = counters(redis_client, settings)
    assert stats[ALERTS_DELIVERY_RETRIES] == 2
    assert stats.get(ALERTS_DELIVERED, 0) == 0


def parked_alert_ids(redis: Redis, settings: Settings, url: str) -> list[str]:
    """The alert ids of the jobs parked for `url`'s destination, oldest first (an entry:
    32-char slot token, 36-char message id, the message)."""
    host = DeliveryJob(alert_id="", rule_id="", url=url, body="", fired_us=0).destination
    entries = redis.lrange(Keys.from_settings(settings).alert_parked(host), 0, -1)
    return [json.loads(e[68:])["args"][0][0]["alert_id"] for e in entries]


def nothing_queued(redis: Redis, settings: Settings) -> bool:
    """No delivery message waits anywhere, delayed ones (`.DQ`) included."""
    keys = Keys.from_settings(settings)
    queues = (ALERTS_DELIVER_QUEUE, ALERTS_DELIVER_RETRY_QUEUE)
    return all(
        redis.llen(keys.queue_list(q)) == 0 and redis.llen(keys.queue_list(dq_name(q))) == 0
        for q in queues
    )


def test_a_busy_host_s_jobs_park_until_it_answers_then_drain_in_order_once_each(
    settings, redis_client, start
):
    """With every slot of a host taken, its other jobs park once each (no re-send, no poll),
    however long the host takes; when it answers they drain one per freed slot, oldest first,
    each delivered once."""
    opened = threading.Event()
    n = 12
    with receiving(gate(opened), host="127.0.0.2") as slow, receiving(status(200)) as healthy:
        start(ALERT_HOST_CONCURRENCY="1", ALERT_WEBHOOK_TIMEOUT="30")
        firings = queue_webhook_firings(redis_client, settings, slow.url, n=n)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERY_PARKED, n - 1), 30)
        # A job to another host queued after them is delivered: every sweep, thread and queue
        # has had its turn meanwhile, and still nothing about the parked jobs moved.
        queue_webhook_firings(redis_client, settings, healthy.url)
        wait_for(lambda: len(healthy.snapshot()) == 1, 30, what="the healthy delivery")
        wait_for(lambda: nothing_queued(redis_client, settings), 30, what="queues empty")
        stats = counters(redis_client, settings)
        assert stats[ALERTS_DELIVERY_PARKED] == n - 1
        assert stats.get(ALERTS_DELIVERY_UNPARKED, 0) == 0
        assert len(slow.snapshot()) == 1  # only the slot holder was attempted
        parked = parked_alert_ids(redis_client, settings, slow.url)
        assert len(parked) == n - 1
        (first,) = (r.key for r in slow.snapshot())
        opened.set()
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERED, n + 1), 60)
        got = [r.key for r in slow.snapshot()]
    assert got == [first, *parked]  # oldest parked first, each once
    assert sorted(got) == sorted(f.alert_id for f in firings)
    stats = counters(redis_client, settings)
    assert stats[ALERTS_DELIVERY_UNPARKED] == stats[ALERTS_DELIVERY_PARKED] == n - 1
    assert redis_client.zcard(Keys.from_settings(settings).alert_parked_hosts) == 0


def test_jobs_parked_behind_a_killed_slot_holder_are_delivered_after_its_lease(
    settings, redis_client, procs
):
    """kill -9 of the worker holding the host's slot: nobody releases it, its lease expires by
    itself, and the surviving worker's sweep hands the slot to the parked jobs."""
    opened = threading.Event()
    n = 5
    env = {"ALERT_HOST_CONCURRENCY": "1", "ALERT_WEBHOOK_TIMEOUT": "3"}
    with receiving(gate(opened)) as slow:
        procs.start_delivery_worker("alerts-a", extra_env=env)
        firings = queue_webhook_firings(redis_client, settings, slow.url, n=n)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERY_PARKED, n - 1), 30)
        assert len(slow.snapshot()) == 1
        procs.kill("alerts-a")  # mid-attempt, holding the slot
        opened.set()
        procs.start_delivery_worker("alerts-b", extra_env=env)
        wanted = {f.alert_id for f in firings}
        wait_for(lambda: {r.key for r in slow.snapshot()} >= wanted, 60, what="all delivered")
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERED, n), 30)
        got = [r.key for r in slow.snapshot()]
    # The killed attempt may be repeated (at-least-once); every parked job is attempted once.
    (killed,) = got[:1]
    assert sorted(k for k in got if k != killed) == sorted(wanted - {killed})
    stats = counters(redis_client, settings)
    assert stats[ALERTS_DELIVERY_UNPARKED] == stats[ALERTS_DELIVERY_PARKED]


def test_slow_and_dead_receivers_do_not_hold_back_a_healthy_one(settings, redis_client, start):
    """Seed-000 scenario 2 in miniature: a receiver that sleeps 10 s and one that refuses
    connections, many jobs each, queued first; every delivery to a healthy receiver arrives while
    the sleeper has not answered even its first request. The attempt timeout is longer than the
    sleep here, so only the host's slot limit (not the timeout) can keep threads free: without it
    every thread would sit on the sleeper until it answers."""
    with receiving(sleeper(10), host="127.0.0.2") as slow, receiving(status(200)) as healthy:
        start(ALERT_HOST_CONCURRENCY=HOST_SLOTS, ALERT_WEBHOOK_TIMEOUT="30")
        queue_webhook_firings(redis_client, settings, slow.url, n=20)
        queue_webhook_firings(redis_client, settings, refused_url("127.0.0.3"), n=20)
        wait_for(lambda: len(slow.snapshot()) >= 2, 30, what="the sleeper's slots taken")
        queue_webhook_firings(redis_client, settings, healthy.url, n=20)
        wait_for(lambda: len(healthy.snapshot()) >= 20, 30, what="healthy deliveries")
        assert slow.answered == 0  # ordering, not timing: all 20 arrived during its sleep
        assert len({r.key for r in healthy.snapshot()}) == 20


@pytest.mark.parametrize(
    ("behaviour", "counter"),
    [
        pytest.param(garbage, ALERTS_DELIVERY_DEAD, id="garbage"),
        pytest.param(redirect_forever, ALERTS_DELIVERY_FAILED, id="redirect-forever"),
        pytest.param(endless_body(500), ALERTS_DELIVERY_DEAD, id="endless-500-body"),
        pytest.param(endless_body(200), ALERTS_DELIVERED, id="endless-200-body"),
        pytest.param(trickle(), ALERTS_DELIVERY_DEAD, id="trickled-headers"),
    ],
)
def test_hostile_receivers_cannot_hang_an_attempt(
    settings, redis_client, start, behaviour, counter
):
    """Each attempt ends (a 1 s deadline here), is classified, and the delivery reaches its
    final state; a hang would leave the counter unset."""
    with receiving(behaviour) as receiver:
        start(ALERT_MAX_ATTEMPTS="2", ALERT_WEBHOOK_TIMEOUT="1")
        queue_webhook_firings(redis_client, settings, receiver.url)
        wait_for(counter_at_least(redis_client, settings, counter, 1), 60, what=counter)
        expected = 2 if counter == ALERTS_DELIVERY_DEAD else 1
        assert len(receiver.snapshot()) == expected


def test_a_host_resolving_into_the_deny_list_is_never_contacted(settings, redis_client, start):
    """The name `localhost` passes a check of the URL as written; its resolved address does not
    (DNS rebinding protection)."""
    with receiving(status(200)) as receiver:
        start(ALERT_WEBHOOK_DENY="127.0.0.0/8,::1/128")
        queue_webhook_firings(
            redis_client, settings, receiver.url.replace("127.0.0.1", "localhost")
        )
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERY_FAILED, 1), 30)
        assert receiver.snapshot() == []
    assert counters(redis_client, settings).get(ALERTS_DELIVERY_RETRIES, 0) == 0
