"""The worker's broker after a lost connection: it takes a new identity, so the messages its old
identity held (a fetch whose reply never came, an ack that failed) go back to the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis import Redis

from backend.bus.keys import Keys
from backend.settings import Settings
from tasks.broker import build_broker
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


@contextmanager
def redis_unreachable(client: Redis) -> Iterator[None]:
    """Point the client's pool at a closed port (connections drop), then back at Redis."""
    kwargs = client.connection_pool.connection_kwargs
    port = kwargs["port"]
    kwargs["port"] = free_port()
    client.connection_pool.reset()
    try:
        yield
    finally:
        kwargs["port"] = port
        client.connection_pool.reset()


def test_a_stranded_message_is_redelivered_after_a_lost_connection(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"heartbeat_timeout_ms": 300, "maintenance_chance": 1_000_000}
    )
    client = Redis.from_url(settings.effective_redis_url, socket_connect_timeout=0.5)
    keys = Keys.from_settings(settings)
    broker = build_broker(settings, client=client)
    broker.declare_queue(settings.queue_name)
    broker.do_enqueue(settings.queue_name, "m-1", b'{"message_id": "m-1"}')
    assert broker.do_fetch(settings.queue_name, 1) == [b'{"message_id": "m-1"}']
    old_id = broker.broker_id
    acks = f"{keys.dramatiq_namespace}:__acks__.{old_id}.{settings.queue_name}"
    assert client.smembers(acks) == {b"m-1"}  # held by this worker until it acks

    with redis_unreachable(client), pytest.raises(redis.ConnectionError):
        broker.do_ack(settings.queue_name, "m-1")  # the ack is lost with the connection
    assert broker.broker_id != old_id

    time.sleep(0.5)  # the old id's heartbeat expires
    assert broker.do_fetch(settings.queue_name, 1) == [b'{"message_id": "m-1"}']  # redelivered
    assert not client.exists(acks)
    client.close()


def test_without_a_lost_connection_the_identity_stays(settings: Settings) -> None:
    client = Redis.from_url(settings.effective_redis_url)
    broker = build_broker(settings, client=client)
    broker.declare_queue(settings.queue_name)
    before = broker.broker_id
    broker.do_fetch(settings.queue_name, 1)
    assert broker.broker_id == before
    client.close()


def test_only_queues_whose_latency_matters_poll_fast(settings: Settings) -> None:
    """Delay queues, the rebuild queue and (without CALC_SPLIT) calc-b's keep Dramatiq's back-off;
    an idle consumer of any other queue sleeps at most WORKER_POLL_MAX_MS between polls."""
    broker = build_broker(settings)
    try:
        fast = [settings.queue_name, "alerts.evaluate"]
        slow = [f"{settings.queue_name}.DQ", "alerts.evaluate.DQ", "rebuilds", "calc.a.done"]
        assert [broker.polls_slowly(q) for q in fast] == [False, False]
        assert all(broker.polls_slowly(q) for q in slow)
        consumer = broker.consume(settings.queue_name, prefetch=1, timeout=1_000)
        assert consumer.timeout == settings.worker_poll_max_ms
        assert broker.consume("rebuilds", prefetch=1, timeout=1_000).timeout == 1_000
        split = build_broker(settings.model_copy(update={"calc_split": True}))
        assert not split.polls_slowly("calc.a.done")
    finally:
        broker.close()
