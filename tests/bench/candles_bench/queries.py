"""The SQL under test: the migration's rollup backfill, the naive aggregation the rollups
are measured against, and the binary COPY that loads the ticks."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import backend
from backend.core.candles import INTERVALS_S
from backend.storage.ticks_repo import COLUMNS

LIMIT = 500
INTERVALS = ("1m", "5m", "15m", "1h")
WIDTHS = {"1m": "1 minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour"}
US_PER_S = 1_000_000
DAY_US = 86_400 * US_PER_S
REL_TOL = 1e-9
ROLLUPS_MIGRATION = (
    Path(backend.__file__).parent / "migrations" / "versions" / "0002_candle_rollups.py"
)


def width_us(interval: str) -> int:
    """Candle width in µs: what the endpoint passes to read_rollup to re-bucket in SQL."""
    return INTERVALS_S[interval] * 1_000_000


def rollup_backfill_sql(table: str, width: str) -> str:
    """The 0002 migration's backfill, read from the migration itself (so it cannot drift): the
    rollups are what `alembic upgrade` builds."""
    statement = _migration_backfills()[table]
    assert f"date_bin('{width}'" in statement, (table, width)
    return statement


@functools.cache
def _migration_backfills() -> dict[str, str]:
    """table -> the INSERT ... SELECT the 0002 migration's `upgrade()` runs for it, recorded by
    running it against a stand-in for alembic's `op`."""
    spec = importlib.util.spec_from_file_location("_rollups_0002", ROLLUPS_MIGRATION)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    executed: list[str] = []
    migration.op = SimpleNamespace(create_table=lambda *_a, **_k: None, execute=executed.append)
    migration.upgrade()
    inserts = [statement for statement in executed if "INSERT INTO" in statement]
    return {statement.split()[2]: statement for statement in inserts}


# What a reader without rollups would write: every candle aggregated from the raw ticks.
BASELINE_SQL = """SELECT date_bin('{width}', ts, 'epoch') AS b,
  (array_agg(price ORDER BY ts, event_id))[1], max(price), min(price),
  (array_agg(price ORDER BY ts DESC, event_id DESC))[1], sum(volume),
  sum(price * volume) / nullif(sum(volume), 0), count(*)
FROM md_ticks WHERE symbol = %s AND ts >= %s AND ts < %s GROUP BY 1 ORDER BY 1"""

COPY_SQL = f"COPY md_ticks ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
