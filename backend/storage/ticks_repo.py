"""Tick persistence and queries. Writes are idempotent: ON CONFLICT (event_id) DO NOTHING."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from backend.core.ticks import Tick, datetime_to_us, us_to_datetime

COLUMNS = "event_id, symbol, ts, price, volume, source, seq, received_at"

_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS md_ticks_stage "
    "(LIKE md_ticks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
ROLLUPS = {"md_candles_1m": "1 minute", "md_candles_1h": "1 hour"}
_ORDER = "ORDER BY ts, event_id"
_ORDER_DESC = "ORDER BY ts DESC, event_id DESC"


def _rollup_cte(table: str, width: str) -> str:
    """Upsert the candles of the rows just inserted (`ins`), merging with what is stored.

    Open/close move only to an earlier/later (ts, event_id); sums are exact NUMERIC over each
    float's shortest decimal, so the result does not depend on how ticks were batched.
    """
    earlier = "(EXCLUDED.open_ts, EXCLUDED.open_eid) < (c.open_ts, c.open_eid)"
    later = "(EXCLUDED.close_ts, EXCLUDED.close_eid) > (c.close_ts, c.close_eid)"
    return f"""{table}_up AS (
  INSERT INTO {table} AS c SELECT symbol, date_bin('{width}', ts, 'epoch'),
    (array_agg(ts {_ORDER}))[1], (array_agg(event_id {_ORDER}))[1],
    (array_agg(price {_ORDER}))[1], max(price), min(price),
    (array_agg(ts {_ORDER_DESC}))[1], (array_agg(event_id {_ORDER_DESC}))[1],
    (array_agg(price {_ORDER_DESC}))[1],
    sum(volume::text::numeric), sum(price::text::numeric * volume::text::numeric), count(*)
  FROM ins GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (symbol, bucket) DO UPDATE SET
    open_ts = CASE WHEN {earlier} THEN EXCLUDED.open_ts ELSE c.open_ts END,
    open_eid = CASE WHEN {earlier} THEN EXCLUDED.open_eid ELSE c.open_eid END,
    open_price = CASE WHEN {earlier} THEN EXCLUDED.open_price ELSE c.open_price END,
    high = GREATEST(c.high, EXCLUDED.high),
    low = LEAST(c.low, EXCLUDED.low),
    close_ts = CASE WHEN {later} THEN EXCLUDED.close_ts ELSE c.close_ts END,
    close_eid = CASE WHEN {later} THEN EXCLUDED.close_eid ELSE c.close_eid END,
    close_price = CASE WHEN {later} THEN EXCLUDED.close_price ELSE c.close_price END,
    volume = c.volume + EXCLUDED.volume,
    notional = c.notional + EXCLUDED.notional,
    trades = c.trades + EXCLUDED.trades
  RETURNING 1
)"""


# Sorted so that two flushers writing overlapping batches lock rows in the same order. The
# rollups see only the rows this statement inserted: re-writing a batch changes nothing.
_MERGE = (
    f"WITH ins AS (INSERT INTO md_ticks ({COLUMNS}) SELECT {COLUMNS} FROM md_ticks_stage "
    "ORDER BY event_id ON CONFLICT (event_id) DO NOTHING "
    "RETURNING symbol, ts, event_id, price, volume), "
    + ", ".join(_rollup_cte(table, width) for table, width in ROLLUPS.items())
    + " SELECT count(*) FROM ins"
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
        row = cur.fetchone()
        return int(row[0]) if row else 0


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


# --- rebuilds (tasks/rebuild.py) ------------------------------------------------------------------
SYMBOL_TICKS_SQL = f"SELECT {COLUMNS} FROM md_ticks WHERE symbol = %s {_ORDER}"

# SELECT DISTINCT symbol, cheaply: a recursive skip scan that jumps from one symbol to the next
# through ix_md_ticks_symbol_ts (one index probe per symbol instead of a scan of every row).
DISTINCT_SYMBOLS_SQL = """
WITH RECURSIVE s(symbol) AS (
  (SELECT symbol FROM md_ticks ORDER BY symbol LIMIT 1)
  UNION ALL
  SELECT (SELECT m.symbol FROM md_ticks m WHERE m.symbol > s.symbol ORDER BY m.symbol LIMIT 1)
  FROM s WHERE s.symbol IS NOT NULL
)
SELECT symbol FROM s WHERE symbol IS NOT NULL
"""


def _row_tick(row: Sequence[Any]) -> Tick:
    event_id, symbol, ts, price, volume, source, seq, received_at = row
    return Tick(
        event_id, symbol, datetime_to_us(ts), float(price), float(volume), source, seq,
        datetime_to_us(received_at),
    )  # fmt: skip


def iter_symbol_ticks(
    conn: psycopg.Connection[Any], symbol: str, chunk: int = 5_000
) -> Iterator[list[Tick]]:
    """Every stored tick of `symbol` in (ts, event_id) order, `chunk` at a time, through a
    server-side cursor: one statement, so one snapshot, and memory bounded by the chunk."""
    with conn.transaction(), conn.cursor(name="rebuild_symbol_ticks") as cur:
        cur.itersize = chunk
        cur.execute(SYMBOL_TICKS_SQL, (symbol,))
        while rows := cur.fetchmany(chunk):
            yield [_row_tick(row) for row in rows]


def distinct_symbols(conn: psycopg.Connection[Any]) -> list[str]:
    """Every symbol with a stored tick, sorted (skip scan, see DISTINCT_SYMBOLS_SQL)."""
    return [row[0] for row in conn.execute(DISTINCT_SYMBOLS_SQL).fetchall()]


async def distinct_symbols_async(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """`distinct_symbols` for the API's pool."""
    cur = await conn.execute(DISTINCT_SYMBOLS_SQL)
    return [row[0] for row in await cur.fetchall()]
