"""Does PostgreSQL answer now? The one query a health check sends, kept with the other SQL."""

from __future__ import annotations

import psycopg

CONNECT_TIMEOUT_S = 2


async def ping_postgres(url: str, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> None:
    """Raises unless a fresh connection (not a pool's, which may hide an outage) runs SELECT 1."""
    conn = await psycopg.AsyncConnection.connect(url, connect_timeout=connect_timeout_s)
    async with conn:
        await conn.execute("SELECT 1")
