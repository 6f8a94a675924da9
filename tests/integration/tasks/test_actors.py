"""The calc actors as Dramatiq runs them: they need CurrentMessage, and they take calc's time from
the injected clock."""

from __future__ import annotations

import orjson
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage
from redis import Redis

from backend.bus.keys import Keys
from backend.core.ticks import us_to_iso
from backend.settings import Settings
from tasks.actors import MissingCurrentMessage, register_actors

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000
CLOCK_US = T0 + 2_000_000  # the simulated "now" of calc


def raw_tick(i: int, symbol: str = "ACT") -> list[object]:
    ts = T0 + i * 1_000
    return [f"act-{symbol}-{i}", symbol, ts, 100.0 + i, 1.0, "s", i + 1, ts + 10]


def test_calc_refuses_to_run_without_current_message(settings: Settings, redis_client: Redis):
    """No message id would make every batch share one done-marker, silently skipping later
    batches: calc must raise, name the middleware, and apply nothing."""
    broker = StubBroker()  # no CurrentMessage middleware
    actors = register_actors(broker, settings, redis_client, clock_us=lambda: CLOCK_US)
    with pytest.raises(MissingCurrentMessage, match="CurrentMessage"):
        actors.calc_ticks.fn([raw_tick(0)])
    keys = Keys.from_settings(settings)
    assert redis_client.get(keys.view("ACT")) is None
    assert redis_client.hget(keys.stats, "calc_ticks") is None


def test_calc_takes_its_time_from_the_injected_clock(settings: Settings, redis_client: Redis):
    broker = StubBroker()
    broker.add_middleware(CurrentMessage())
    actors = register_actors(broker, settings, redis_client, clock_us=lambda: CLOCK_US)
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        actors.calc_ticks.send([raw_tick(i) for i in range(3)])
        actors.calc_ticks.send([raw_tick(i) for i in range(3, 5)])  # a second, distinct batch
        broker.join(settings.queue_name, fail_fast=True)
        worker.join()
    finally:
        worker.stop()
    view = orjson.loads(redis_client.get(Keys.from_settings(settings).view("ACT")) or b"{}")
    assert view["ticks_total"] == 5  # each batch has its own marker: none was skipped
    assert view["updated_at"] == us_to_iso(CLOCK_US)
    assert view["last_received_us"] == T0 + 4_000 + 10
