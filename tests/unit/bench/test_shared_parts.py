"""Pure parts the benchmarks and tests share: the plain table, the migration's backfill SQL as
the candles bench runs it, and the throw-away database's URL."""

from __future__ import annotations

import pytest

from backend.storage.ticks_repo import ROLLUPS
from tests.bench.candles_bench.queries import rollup_backfill_sql
from tests.bench.text import table
from tests.support.servers import with_database


def test_table_aligns_the_first_column_left_and_the_rest_right() -> None:
    text = table(["name", "n"], [["a", "1"], ["bbb", "22"]])
    assert text.splitlines() == ["name   n", "----  --", "a      1", "bbb   22"]


@pytest.mark.parametrize(("rollup", "width"), sorted(ROLLUPS.items()))
def test_backfill_is_the_migrations_own_statement_for_each_rollup(rollup: str, width: str) -> None:
    statement = rollup_backfill_sql(rollup, width)
    assert f"INSERT INTO {rollup} SELECT symbol, date_bin('{width}', ts, 'epoch')" in statement
    assert "sum(price::text::numeric * volume::text::numeric)" in statement
    with pytest.raises(AssertionError):
        rollup_backfill_sql(rollup, "7 minutes")


def test_a_database_url_keeps_the_server_and_the_query() -> None:
    url = "postgresql://u:p@127.0.0.1:5432/postgres?sslmode=disable"
    assert with_database(url, "tickstream_test_ab12") == (
        "postgresql://u:p@127.0.0.1:5432/tickstream_test_ab12?sslmode=disable"
    )
