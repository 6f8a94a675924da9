"""The SQL under test: the migration's rollup backfill, the naive aggregation the rollups
are measured against, and the binary COPY that loads the ticks."""

from __future__ import annotations

from backend.core.candles import INTERVALS_S
from backend.storage.ticks_repo import COLUMNS

LIMIT = 500
INTERVALS = ("1m", "5m", "15m", "1h")
WIDTHS = {"1m": "1 minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour"}
US_PER_S = 1_000_000
DAY_US = 86_400 * US_PER_S
REL_TOL = 1e-9


def width_us(interval: str) -> int:
    """Candle width in µs: what the endpoint passes to read_rollup to re-bucket in SQL."""
    return INTERVALS_S[interval] * 1_000_000


def rollup_backfill_sql(table: str, width: str) -> str:
    """The 0002 migration's backfill, same text: the rollups are what `alembic upgrade` builds."""
    return f"""
            INSERT INTO {table} SELECT symbol, date_bin('{width}', ts, 'epoch') AS bucket,
              (array_agg(ts ORDER BY ts, event_id))[1],
              (array_agg(event_id ORDER BY ts, event_id))[1],
              (array_agg(price ORDER BY ts, event_id))[1], max(price), min(price),
              (array_agg(ts ORDER BY ts DESC, event_id DESC))[1],
              (array_agg(event_id ORDER BY ts DESC, event_id DESC))[1],
              (array_agg(price ORDER BY ts DESC, event_id DESC))[1],
              sum(volume::text::numeric),
              sum(price::text::numeric * volume::text::numeric),
              count(*)
            FROM md_ticks GROUP BY 1, 2
            """


# What a reader without rollups would write: every candle aggregated from the raw ticks.
BASELINE_SQL = """SELECT date_bin('{width}', ts, 'epoch') AS b,
  (array_agg(price ORDER BY ts, event_id))[1], max(price), min(price),
  (array_agg(price ORDER BY ts DESC, event_id DESC))[1], sum(volume),
  sum(price * volume) / nullif(sum(volume), 0), count(*)
FROM md_ticks WHERE symbol = %s AND ts >= %s AND ts < %s GROUP BY 1 ORDER BY 1"""

COPY_SQL = f"COPY md_ticks ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
