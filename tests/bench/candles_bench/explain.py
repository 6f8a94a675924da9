"""EXPLAIN (ANALYZE, BUFFERS) of the rollup query and of the baseline, for the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from backend.storage.candles_repo import ROLLUP_FOR, read_rollup
from tests.bench.candles_bench.measure import Window
from tests.bench.candles_bench.queries import BASELINE_SQL, WIDTHS, width_us


class _QueryRecorder:
    """Stands in for a connection to learn the exact SQL `read_rollup` sends (for EXPLAIN)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.calls: list[tuple[str, Any]] = []

    async def execute(self, query: str, params: Any = None) -> Any:
        self.calls.append((query, params))
        return await self.conn.execute(query, params)


async def explain(conn: psycopg.AsyncConnection[Any], query: str, params: Any) -> str:
    cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params)
    return "\n".join(str(r[0]) for r in await cur.fetchall())


async def explain_both(
    conn: psycopg.AsyncConnection[Any], symbol: str, window: Window
) -> dict[str, str]:
    recorder = _QueryRecorder(conn)
    await read_rollup(
        recorder,
        ROLLUP_FOR[window.interval],
        symbol,
        window.from_us,
        window.to_us,
        width_us(window.interval),
    )  # type: ignore[arg-type]
    (query, params) = recorder.calls[0]
    return {
        "ours": await explain(conn, query, params),
        "baseline": await explain(
            conn, BASELINE_SQL.format(width=WIDTHS[window.interval]), window.sql_params(symbol)
        ),
    }


async def explain_plans(db_url: str, symbol: str, windows: Sequence[Window]) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        return {
            f"{w.interval}_{w.kind}": await explain_both(conn, symbol, w)
            for w in windows
            if w.kind == "latest"
        }
