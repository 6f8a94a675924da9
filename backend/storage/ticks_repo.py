"""Tick persistence and queries. Writes are idempotent: ON CONFLICT (event_id) DO NOTHING."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backend.core.ticks import Tick, us_to_datetime

COLUMNS = "event_id, symbol, ts, price, volume, source, seq, received_at"

_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS md_ticks_stage "
    "(LIKE md_ticks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
# Sorted so that two flushers writing overlapping batches lock rows in the same order.
_MERGE = (
    f"INSERT INTO md_ticks ({COLUMNS}) SELECT {COLUMNS} FROM md_ticks_stage "
    "ORDER BY event_id ON CONFLICT (event_id) DO NOTHING"
)


def write_ticks(conn: psycopg.Connection[Any], ticks: Sequence[Tick]) -> int:
    """Write a batch in ONE transaction (COPY into a staging table, then merge).

    Returns the number of rows actually inserted; re-writing a batch inserts nothing.
    """
    if not ticks:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_STAGE)
        with cur.copy(f"COPY md_ticks_stage ({COLUMNS}) FROM STDIN") as copy:
            for t in ticks:
                copy.write_row(
                    (
                        t.event_id,
                        t.symbol,
                        us_to_datetime(t.ts_us),
                        t.price,
                        t.volume,
                        t.source,
                        t.seq,
                        us_to_datetime(t.received_us),
                    )
                )
        cur.execute(_MERGE)
        return cur.rowcount


HISTORY_SQL = (
    f"SELECT {COLUMNS} FROM md_ticks WHERE symbol = %s ORDER BY ts DESC, event_id DESC LIMIT %s"
)


async def read_history(
    conn: psycopg.AsyncConnection[Any], symbol: str, limit: int
) -> list[dict[str, Any]]:
    """The `limit` latest stored ticks of `symbol`, newest first (by event time)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(HISTORY_SQL, (symbol, limit))
        return await cur.fetchall()
