"""Redis and PostgreSQL for tests, chaos and benchmarks.

Two kinds, because they answer different needs:
- configured servers (`start_servers`, `open_servers`): the ones REDIS_URL / PG_URL name, else the
  embedded binaries in a temp dir. Each run works in a throw-away database of its own
  (`create_database`), so runs on a shared machine server never see each other's data;
- private servers (`PrivateServers`): always the embedded binaries on free ports, whatever the
  environment says, for runs that stop or kill a server (chaos) or measure one (benchmarks).

Everything started here is stopped, and every database dropped, when the caller's ExitStack
unwinds (errors and Ctrl-C included).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.settings import Settings
from backend.storage.migrate import upgrade


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrate(pg_url: str) -> None:
    """The schema as `alembic upgrade head` builds it, in the database `pg_url` names."""
    upgrade(Settings().model_copy(update={"pg_url": pg_url}))


@dataclass
class ServerUrls:
    """Where the configured (or embedded) servers answer."""

    admin_url: str  # PostgreSQL, a database to create others from
    redis_url: str
    postgres: EmbeddedPostgres | None  # the embedded PostgreSQL, when it is one

    @property
    def embedded(self) -> bool:
        return self.postgres is not None


def start_servers(settings: Settings, stack: contextlib.ExitStack, tmp: Path) -> ServerUrls:
    """The servers `settings` name; an embedded one in `tmp` for each it leaves unset."""
    redis_url = settings.effective_redis_url
    if settings.uses_embedded_redis:
        redis_server = EmbeddedRedis(tmp / "redis", free_port())
        redis_server.start()
        stack.callback(redis_server.stop)
        redis_url = redis_server.url
    admin_url = settings.psycopg_url
    pg_server = None
    if settings.uses_embedded_pg:
        pg_server = EmbeddedPostgres(tmp / "pg", free_port())
        pg_server.start()
        stack.callback(pg_server.stop)
        admin_url = pg_server.url
    return ServerUrls(admin_url, redis_url, pg_server)


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def create_database(
    admin_url: str,
    stack: contextlib.ExitStack,
    prefix: str,
    on_drop: Callable[[str], None] | None = None,
) -> tuple[str, str]:
    """A fresh database `<prefix>_<random>` (name, URL), dropped when the stack unwinds."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if on_drop is not None:
            on_drop(name)

    stack.callback(drop)
    return name, with_database(admin_url, name)


@dataclass
class Servers:
    """Redis and a migrated database of this run's own on the configured servers."""

    redis_url: str
    pg_url: str  # a database of this run's own, migrated
    embedded: bool
    postgres: EmbeddedPostgres | None


def open_servers(
    settings: Settings, stack: contextlib.ExitStack, tmp: Path, prefix: str
) -> Servers:
    """`start_servers`, then a migrated throw-away database named `<prefix>_<random>`."""
    urls = start_servers(settings, stack, tmp)
    _, pg_url = create_database(urls.admin_url, stack, prefix)
    migrate(pg_url)
    return Servers(urls.redis_url, pg_url, embedded=urls.embedded, postgres=urls.postgres)


@dataclass
class PrivateServers:
    """Embedded Redis and PostgreSQL of a run's own, on free ports: it may stop, kill or
    measure them without touching anyone else's."""

    redis: EmbeddedRedis
    postgres: EmbeddedPostgres

    @classmethod
    def start(
        cls, stack: contextlib.ExitStack, tmp: Path, appendfsync: str = "everysec"
    ) -> PrivateServers:
        """Both started and migrated, stopped when the stack unwinds."""
        redis = EmbeddedRedis(tmp / "redis", free_port(), appendfsync=appendfsync)
        redis.start()
        stack.callback(redis.stop)
        pg = EmbeddedPostgres(tmp / "pg", free_port())
        pg.start()
        stack.callback(pg.stop)
        migrate(pg.url)
        return cls(redis, pg)

    def truncate(self) -> None:
        """Empty md_ticks between runs, so every run's Postgres starts the same."""
        with psycopg.connect(self.postgres.url, autocommit=True) as conn:
            conn.execute("TRUNCATE md_ticks")
