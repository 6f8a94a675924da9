"""Session servers (embedded or from REDIS_URL / PG_URL) and per-test settings and processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from redis import Redis

from backend.config import Settings
from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.storage.migrate import upgrade
from tests.integration.harness import Processes, free_port, make_settings, running, settings_env


@dataclass
class Servers:
    redis_url: str
    pg_url: str  # a database of this session's own, migrated
    embedded: bool
    postgres: EmbeddedPostgres | None


def _with_database(url: str, database: str) -> str:
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{database}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    env_settings = Settings()
    root = tmp_path_factory.mktemp("servers")
    redis_server = pg_server = None
    if env_settings.uses_embedded_redis:
        redis_server = EmbeddedRedis(root / "redis", free_port())
        redis_server.start()
        redis_url = redis_server.url
    else:
        redis_url = env_settings.effective_redis_url
    if env_settings.uses_embedded_pg:
        pg_server = EmbeddedPostgres(root / "pg", free_port())
        pg_server.start()
        admin_url = pg_server.url
    else:
        admin_url = env_settings.psycopg_url
    database = f"tickstream_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    pg_url = _with_database(admin_url, database)
    upgrade(Settings().model_copy(update={"pg_url": pg_url}))
    try:
        yield Servers(redis_url, pg_url, embedded=pg_server is not None, postgres=pg_server)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
        if pg_server is not None:
            pg_server.stop()
        if redis_server is not None:
            redis_server.stop()


@pytest.fixture
def settings(servers: Servers) -> Iterator[Settings]:
    """Fresh namespace in Redis and an empty md_ticks for every test."""
    with psycopg.connect(servers.pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE md_ticks, md_candles_1m, md_candles_1h")
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
