"""Candle queries over the rollup tables (md_candles_1m, md_candles_1h)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from backend.core.candles import Candle
from backend.core.ticks import datetime_to_us, us_to_datetime

# Each interval reads the finest rollup it is a multiple of.
ROLLUP_FOR = {
    "1m": "md_candles_1m",
    "5m": "md_candles_1m",
    "15m": "md_candles_1m",
    "1h": "md_candles_1h",
}
_ROLLUP_US = {"md_candles_1m": 60_000_000, "md_candles_1h": 3_600_000_000}


def rollup_width_us(table: str) -> int:
    return _ROLLUP_US[table]


async def read_rollup(
    conn: psycopg.AsyncConnection[Any], table: str, symbol: str, from_us: int, to_us: int
) -> list[Candle]:
    """Rollup rows of `symbol` with bucket in [from, to), as candles."""
    if table not in _ROLLUP_US:
        raise ValueError(f"unknown rollup {table}")
    cur = await conn.execute(
        f"SELECT bucket, open_ts, open_eid, open_price, high, low, close_ts, close_eid, "
        f"close_price, volume, notional, trades FROM {table} "
        "WHERE symbol = %s AND bucket >= %s AND bucket < %s ORDER BY bucket",
        (symbol, us_to_datetime(from_us), us_to_datetime(to_us)),
    )
    return [
        Candle(
            bucket_us=datetime_to_us(r[0]),
            open_key=(datetime_to_us(r[1]), r[2]),
            open_price=r[3],
            high=r[4],
            low=r[5],
            close_key=(datetime_to_us(r[6]), r[7]),
            close_price=r[8],
            volume=r[9],
            notional=r[10],
            trades=r[11],
        )
        for r in await cur.fetchall()
    ]


async def stored_event_ids(
    conn: psycopg.AsyncConnection[Any], event_ids: Sequence[str]
) -> set[str]:
    if not event_ids:
        return set()
    cur = await conn.execute(
        "SELECT event_id FROM md_ticks WHERE event_id = ANY(%s)", (list(event_ids),)
    )
    return {row[0] for row in await cur.fetchall()}
