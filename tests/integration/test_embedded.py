"""The embedded Redis and PostgreSQL really start, persist, refuse busy ports, and stop."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from backend.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    check_reachable,
    start_embedded,
)
from backend.settings import Settings

pytestmark = pytest.mark.integration


def free_port() -> int:
    """A loopback port nobody listens on right now (never the system 6379 / 5432)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def aof_files(data_dir: Path) -> list[Path]:
    """Redis 6 writes appendonly.aof; Redis 7 an appendonlydir/ of files. Accept either."""
    return [p for p in data_dir.rglob("appendonly*") if p.is_file()]


@pytest.fixture(scope="module")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("var") / "redis", free_port(), "always")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedded_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("var") / "pg", free_port())
    server.start()
    yield server
    server.stop()


def test_redis_answers_and_writes_the_aof(embedded_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(embedded_redis.url)
    try:
        assert client.ping()
        client.set("tickstream:test", "42")
        assert client.get("tickstream:test") == b"42"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()
    deadline = time.monotonic() + 3
    while not any(p.stat().st_size for p in aof_files(embedded_redis.data_dir)):
        assert time.monotonic() < deadline, "no AOF written"
        time.sleep(0.05)
    assert b"tickstream:test" in b"".join(
        p.read_bytes() for p in aof_files(embedded_redis.data_dir)
    )


def test_redis_survives_sigkill_through_its_aof(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", free_port(), "always")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("survivor", "yes")
        client.close()
        server.kill()
        assert not listening(server.port)
        server.start()
        client = redis.Redis.from_url(server.url)
        assert client.get("survivor") == b"yes"
        client.close()
    finally:
        server.stop()
    assert not listening(server.port)


def test_second_redis_on_a_busy_port_fails_in_one_line(
    embedded_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    with pytest.raises(EmbeddedServerError) as info:
        EmbeddedRedis(tmp_path / "redis2", embedded_redis.port).start()
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"port {embedded_redis.port} is busy: stop whatever listens there "
        "or set EMBEDDED_REDIS_PORT / REDIS_URL"
    )


def test_postgres_answers_select_1(embedded_pg: EmbeddedPostgres) -> None:
    with psycopg.connect(embedded_pg.url, connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("show fsync").fetchone() == ("on",)
        assert conn.execute("show server_encoding").fetchone() == ("UTF8",)
        assert conn.execute("show max_connections").fetchone() == ("200",)


def test_create_database_is_idempotent(embedded_pg: EmbeddedPostgres) -> None:
    url = embedded_pg.create_database("tickstream_test")
    assert embedded_pg.create_database("tickstream_test") == url
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.execute("select current_database()").fetchone() == ("tickstream_test",)


def test_second_postgres_on_a_busy_port_fails_in_one_line(
    embedded_pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    with pytest.raises(EmbeddedServerError) as info:
        EmbeddedPostgres(tmp_path / "pg2", embedded_pg.port).start()
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"port {embedded_pg.port} is busy: stop whatever listens there "
        "or set EMBEDDED_PG_PORT / PG_URL"
    )


def test_postgres_recovers_after_sigkill_and_stops(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("create table t (x int)")
            conn.execute("insert into t values (7)")
        server.kill()  # leaves a stale postmaster.pid behind, like a crash
        assert (server.data_dir / "postmaster.pid").exists()
        server.start()
        with psycopg.connect(server.url) as conn:
            assert conn.execute("select x from t").fetchone() == (7,)
    finally:
        server.stop()
    assert not listening(server.port)


def test_start_embedded_gives_child_env_and_stops(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        embedded_redis_port=free_port(),
        embedded_pg_port=free_port(),
        redis_url=None,
        pg_url=None,
    )
    servers = start_embedded(settings)
    try:
        env = servers.env()
        assert env["REDIS_URL"] == f"redis://127.0.0.1:{settings.embedded_redis_port}/0"
        assert (
            env["PG_URL"] == f"postgresql://postgres@127.0.0.1:{settings.embedded_pg_port}/postgres"
        )
        live = servers.apply(settings)
        assert not live.uses_embedded_redis and not live.uses_embedded_pg
        check_reachable(live)  # the URLs now count as external, and they answer
        assert (tmp_path / "redis").is_dir() and (tmp_path / "pg" / "PG_VERSION").exists()
    finally:
        servers.stop()
    assert not listening(settings.embedded_redis_port)
    assert not listening(settings.embedded_pg_port)


def test_unreachable_external_servers_fail_in_one_line() -> None:
    redis_port, pg_port = free_port(), free_port()
    settings = Settings(redis_url=f"redis://:hunter2@127.0.0.1:{redis_port}/0", pg_url=None)
    with pytest.raises(EmbeddedServerError) as info:
        check_reachable(settings)
    message = str(info.value)
    assert message.startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{redis_port}/0")
    assert message.endswith("start it or unset REDIS_URL to use the embedded one")
    assert "\n" not in message and "hunter2" not in message

    settings = Settings(redis_url=None, pg_url=f"postgresql://u:pw@127.0.0.1:{pg_port}/db")
    with pytest.raises(EmbeddedServerError) as info:
        check_reachable(settings)
    message = str(info.value)
    assert message.startswith(f"cannot reach PostgreSQL at postgresql://u:***@127.0.0.1:{pg_port}")
    assert message.endswith("start it or unset PG_URL to use the embedded one")
    assert "\n" not in message
