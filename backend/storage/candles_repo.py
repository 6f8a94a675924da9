"""Candle queries over the rollup tables (md_candles_1m, md_candles_1h)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
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


_PLAIN = (
    "SELECT bucket, open_ts, open_eid, open_price, high, low, close_ts, close_eid, "
    "close_price, volume, notional, trades FROM {table} "
    "WHERE symbol = %(symbol)s AND bucket >= %(lo)s AND bucket < %(hi)s ORDER BY bucket"
)
# Coarser candles merged in the database (same merge as core.candles.merge), so a 15m request
# moves 500 rows to Python, not 7,500.
_FIRST = "ORDER BY open_ts, open_eid"
_LAST = "ORDER BY close_ts DESC, close_eid DESC"
_GROUPED = (
    "SELECT date_bin(%(width)s, bucket, 'epoch') AS b, "
    f"(array_agg(open_ts {_FIRST}))[1], (array_agg(open_eid {_FIRST}))[1], "
    f"(array_agg(open_price {_FIRST}))[1], max(high), min(low), "
    f"(array_agg(close_ts {_LAST}))[1], (array_agg(close_eid {_LAST}))[1], "
    f"(array_agg(close_price {_LAST}))[1], sum(volume), sum(notional), sum(trades) "
    "FROM {table} WHERE symbol = %(symbol)s AND bucket >= %(lo)s AND bucket < %(hi)s "
    "GROUP BY 1 ORDER BY 1"
)


async def read_rollup(
    conn: psycopg.AsyncConnection[Any],
    table: str,
    symbol: str,
    from_us: int,
    to_us: int,
    width_us: int | None = None,
) -> list[Candle]:
    """Candles of `symbol` with bucket in [from, to) from a rollup, re-bucketed to `width_us`
    (a multiple of the rollup's width) when given."""
    if table not in _ROLLUP_US:
        raise ValueError(f"unknown rollup {table}")
    params: dict[str, Any] = {
        "symbol": symbol,
        "lo": us_to_datetime(from_us),
        "hi": us_to_datetime(to_us),
    }
    if width_us is None or width_us == _ROLLUP_US[table]:
        sql = _PLAIN.format(table=table)
    else:
        sql = _GROUPED.format(table=table)
        params["width"] = timedelta(microseconds=width_us)
    cur = await conn.execute(sql, params)
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
            trades=int(r[11]),
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
