"""One tick, one INSERT, one COMMIT: the naive write path (no batching, no outbox)."""

from __future__ import annotations

from typing import Any

import psycopg

from backend.core.ticks import Tick, us_to_datetime
from backend.storage.ticks_repo import COLUMNS

INSERT_SQL = (
    f"INSERT INTO md_ticks ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (event_id) DO NOTHING"
)


async def insert_tick(conn: psycopg.AsyncConnection[Any], tick: Tick) -> bool:
    """Store `tick` and commit (the connection is autocommit: the statement is the
    transaction). True when it was new, False when its event_id was already stored."""
    cur = await conn.execute(
        INSERT_SQL,
        (
            tick.event_id,
            tick.symbol,
            us_to_datetime(tick.ts_us),
            tick.price,
            tick.volume,
            tick.source,
            tick.seq,
            us_to_datetime(tick.received_us),
        ),
    )
    return cur.rowcount == 1
