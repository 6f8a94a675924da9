"""Webhook delivery through the real system: firings queued exactly as the evaluator queues them
(`queue_firing` in a MULTI), the delivery worker as `make run` starts it (its own process), and
real HTTP receivers in this process. Assertions are on what receivers got and on the counters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dramatiq.brokers.stub import StubBroker
from redis import Redis

from backend.bus.alert_delivery import (
    ALERTS_DELIVERED,
    ALERTS_DELIVERY_BUSY,
    ALERTS_DELIVERY_DEAD,
    ALERTS_DELIVERY_FAILED,
    ALERTS_DELIVERY_RETRIES,
    DELIVERY_LATENCY_PREFIX,
)
from backend.bus.keys import ALERTS_DELIVER_QUEUE, ALERTS_DELIVER_RETRY_QUEUE, Keys
from backend.core.alerts.firing import verify, webhook_body
from backend.settings import Settings
from tasks.actors import register_actors
from tests.support.processes import Processes
from tests.support.waiting import wait_for
from tests.support.webhooks import (
    endless_body,
    first_then,
    garbage,
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


def test_a_busy_host_gets_no_more_than_its_slots(settings, redis_client, start):
    """With every slot of a host taken, its other jobs go back to the queue (counted) instead of
    waiting or connecting."""
    with receiving(sleeper(60)) as receiver:
        start(ALERT_HOST_CONCURRENCY="2", ALERT_WEBHOOK_TIMEOUT="30")
        queue_webhook_firings(redis_client, settings, receiver.url, n=10)
        wait_for(counter_at_least(redis_client, settings, ALERTS_DELIVERY_BUSY, 20), 30)
        assert len(receiver.snapshot()) == 2  # no attempt can end before 30 s


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
