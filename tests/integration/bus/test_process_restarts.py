"""The restart counter's gateway against real Redis: the launcher's writes, the API's reads."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from backend.bus.keys import Keys
from backend.bus.process_restarts import ProcessRestartsReader, ProcessRestartsStore
from backend.core.processes import ProcessRestarts
from backend.settings import Settings
from backend.supervision.reporting import RestartReporter
from backend.supervision.supervisor import Restart
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000


def test_each_restart_counts_one_and_keeps_the_last_exit(
    settings: Settings, redis_client: Redis
) -> None:
    keys = Keys.from_settings(settings)
    store = ProcessRestartsStore(redis_client, keys)
    assert store.all() == {}
    assert store.record("worker", exit_code=-9, now_ms=NOW_MS) == 1
    assert store.record("worker", exit_code=1, now_ms=NOW_MS + 5) == 2
    assert store.record("api", exit_code=None, now_ms=NOW_MS + 7) == 1
    expected = {
        "api": ProcessRestarts(count=1, last_exit_code=None, last_restart_ms=NOW_MS + 7),
        "worker": ProcessRestarts(count=2, last_exit_code=1, last_restart_ms=NOW_MS + 5),
    }
    assert store.all() == expected
    assert list(store.all()) == ["api", "worker"]  # sorted by name

    async def read() -> dict[str, ProcessRestarts]:
        client = AsyncRedis.from_url(settings.effective_redis_url)
        try:
            return await ProcessRestartsReader(client, keys).all()
        finally:
            await client.aclose()

    assert asyncio.run(read()) == expected
    # Another namespace sees none of it.
    other = Keys(namespace=f"{keys.namespace}-other", queue_name=keys.queue_name)
    assert ProcessRestartsStore(redis_client, other).all() == {}


def test_the_reporter_logs_and_goes_on_when_redis_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    store = ProcessRestartsStore(dead, Keys(namespace="none", queue_name="q"))
    with pytest.raises(RedisConnectionError):
        store.all()
    reporter = RestartReporter(store, clock_ms=lambda: NOW_MS)
    with caplog.at_level(logging.WARNING, logger="backend.supervision.reporting"):
        reporter(Restart("worker", -9, restarts=1, delay_s=1.0))  # returns at once: off the loop
        reporter.close()
    assert [r.message for r in caplog.records] == ["restart not counted: Redis unreachable"]
    assert caplog.records[0].signal == "SIGKILL"  # type: ignore[attr-defined]
