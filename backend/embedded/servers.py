"""Both embedded servers together, for the launcher, and the check for external servers."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from backend.embedded.common import EmbeddedServerError, StopsOnExit, _first_line, redact_url
from backend.embedded.postgres_server import EmbeddedPostgres
from backend.embedded.redis_server import EmbeddedRedis

if TYPE_CHECKING:
    from backend.settings import Settings


@dataclass
class EmbeddedServers(StopsOnExit):
    """What start_embedded started, and the URLs every child process should use."""

    redis: EmbeddedRedis | None
    postgres: EmbeddedPostgres | None
    redis_url: str
    pg_url: str

    def env(self) -> dict[str, str]:
        """REDIS_URL / PG_URL overrides for child processes (external URLs pass through)."""
        return {"REDIS_URL": self.redis_url, "PG_URL": self.pg_url}

    def apply(self, settings: Settings) -> Settings:
        """A copy of `settings` pointing at these servers (for in-process use, e.g. migrations)."""
        return settings.model_copy(update={"redis_url": self.redis_url, "pg_url": self.pg_url})

    def stop(self) -> None:
        """Stop whatever we started; PostgreSQL first, then Redis. Safe to call twice."""
        errors: list[BaseException] = []
        for server in (self.postgres, self.redis):
            if server is None:
                continue
            try:
                server.stop()
            except Exception as exc:  # keep going: the other one must still stop
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self


def start_embedded(settings: Settings) -> EmbeddedServers:
    """Start the embedded Redis and/or PostgreSQL that `settings` asks for (none if both URLs set).

    Data goes to VAR_DIR/redis and VAR_DIR/pg. If PostgreSQL fails, the Redis we just started is
    stopped again before the error propagates.
    """
    var_dir = Path(settings.var_dir).absolute()
    redis_server: EmbeddedRedis | None = None
    pg_server: EmbeddedPostgres | None = None
    try:
        if settings.uses_embedded_redis:
            redis_server = EmbeddedRedis(
                var_dir / "redis", settings.embedded_redis_port, settings.redis_appendfsync
            )
            redis_server.start()
        if settings.uses_embedded_pg:
            pg_server = EmbeddedPostgres(var_dir / "pg", settings.embedded_pg_port)
            pg_server.start()
    except BaseException:
        for server in (pg_server, redis_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        raise
    return EmbeddedServers(
        redis=redis_server,
        postgres=pg_server,
        redis_url=redis_server.url if redis_server else settings.effective_redis_url,
        pg_url=pg_server.url if pg_server else settings.effective_pg_url,
    )


def check_reachable(settings: Settings) -> None:
    """Fail fast, in one line, if an external REDIS_URL / PG_URL doesn't answer within ~3 s.

    Embedded servers are skipped: start_embedded checks those.
    """
    if not settings.uses_embedded_redis:
        _check_redis(settings.effective_redis_url)
    if not settings.uses_embedded_pg:
        _check_pg(settings.psycopg_url, settings.effective_pg_url)


def _check_redis(url: str) -> None:
    import redis

    hint = "start it or unset REDIS_URL to use the embedded one"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    except ValueError as exc:
        raise EmbeddedServerError(
            f"REDIS_URL is not a Redis URL ({_first_line(str(exc))})"
        ) from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise EmbeddedServerError(
            f"cannot reach Redis at {redact_url(url)} ({_first_line(str(exc))}): {hint}"
        ) from None
    finally:
        client.close()


def _check_pg(conninfo: str, shown: str) -> None:
    import psycopg

    hint = "start it or unset PG_URL to use the embedded one"
    try:
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        raise EmbeddedServerError(
            f"cannot reach PostgreSQL at {redact_url(shown)} ({_first_line(str(exc))}): {hint}"
        ) from None
