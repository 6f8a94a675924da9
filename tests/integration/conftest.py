"""Session servers (embedded or from REDIS_URL / PG_URL) and per-test settings and processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from backend.settings import Settings
from tests.support.processes import Processes, make_settings, running, settings_env
from tests.support.servers import Servers, open_servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        root = tmp_path_factory.mktemp("servers")
        yield open_servers(Settings(), stack, root, prefix="tickstream_test")


@pytest.fixture
def settings(servers: Servers) -> Iterator[Settings]:
    """Fresh namespace in Redis and an empty md_ticks for every test."""
    with psycopg.connect(servers.pg_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE md_ticks, md_candles_1m, md_candles_1h, md_imports, "
            "alert_rules, alert_events, alert_deliveries"
        )
    s = make_settings(servers.redis_url, servers.pg_url)
    yield s
    client = Redis.from_url(servers.redis_url)
    keys = list(client.scan_iter(match=f"{s.redis_namespace}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[Redis]:
    client = Redis.from_url(settings.effective_redis_url)
    yield client
    client.close()


@pytest.fixture
def procs(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    with running(settings_env(settings), tmp_path) as processes:
        yield processes
