"""Loading the ticks (binary COPY, chunk by chunk) and building the rollups, timed."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from backend.storage.ticks_repo import ROLLUPS
from tests.bench.candles_bench.copy_format import copy_payload
from tests.bench.candles_bench.database import server_counters
from tests.bench.candles_bench.queries import COPY_SQL, rollup_backfill_sql
from tests.bench.candles_bench.ticks import TickGenerator
from tests.bench.text import fmt_bytes, fmt_int, say

EXPECTED_COPY_ROWS_S = 150_000  # what COPY reaches on the 2-core dev box; below it we say why


@dataclass
class LoadStats:
    rows: int
    wall_s: float
    copy_s: float
    build_s: float
    chunks: int
    wal_bytes: int | None
    checkpoints: int | None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0


def load_ticks(db_url: str, gen: TickGenerator, lo: int, hi: int, chunk: int) -> LoadStats:
    """COPY rows [lo, hi) straight into md_ticks, one transaction per chunk.

    Not through the flusher (10M ticks that way take far too long); the rollups are built
    afterwards with the migration's SQL. Chunk i+1 is generated in a thread during chunk i's COPY.
    """
    bounds = [(a, min(a + chunk, hi)) for a in range(lo, hi, chunk)]
    copy_s = build_s = 0.0
    started = time.perf_counter()
    next_report = lo + 2_000_000

    def build(rows: tuple[int, int]) -> tuple[bytes, float]:
        t = time.perf_counter()
        payload = copy_payload(gen.columns(*rows))
        return payload, time.perf_counter() - t

    with (
        psycopg.connect(db_url, autocommit=True) as stats_conn,
        psycopg.connect(db_url) as conn,
        ThreadPoolExecutor(1, thread_name_prefix="bench-gen") as pool,
    ):
        before = server_counters(stats_conn)
        pending = pool.submit(build, bounds[0])
        for i, (_a, b) in enumerate(bounds):
            payload, secs = pending.result()
            build_s += secs
            if i + 1 < len(bounds):
                pending = pool.submit(build, bounds[i + 1])
            t = time.perf_counter()
            with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                copy.write(payload)
            conn.commit()
            copy_s += time.perf_counter() - t
            if b >= next_report and b < hi:
                rate = (b - lo) / (time.perf_counter() - started)
                say(f"  loaded {fmt_int(b)} ticks ({fmt_int(rate)} rows/s)")
                next_report += 2_000_000
        after = server_counters(stats_conn)
    wall = time.perf_counter() - started

    def delta(key: str) -> int | None:
        return after[key] - before[key] if key in after and key in before else None

    return LoadStats(
        hi - lo, wall, copy_s, build_s, len(bounds), delta("wal_bytes"), delta("checkpoints")
    )


def describe_load(stats: LoadStats, facts: dict[str, Any]) -> list[str]:
    lines = [
        f"load: {fmt_int(stats.rows)} ticks in {stats.wall_s:.1f} s = "
        f"{fmt_int(stats.rows_per_s)} rows/s (binary COPY {stats.copy_s:.1f} s, client-side "
        f"generation {stats.build_s:.1f} s overlapped; {stats.chunks} chunks)"
    ]
    if stats.wal_bytes is not None:
        lines.append(
            f"      WAL written {fmt_bytes(stats.wal_bytes)}"
            + (f", {stats.checkpoints} checkpoints" if stats.checkpoints is not None else "")
        )
    if stats.rows >= 1_000_000 and stats.rows_per_s < EXPECTED_COPY_ROWS_S:
        pg = facts["pg_settings"]
        bound = "client" if stats.build_s > 0.8 * stats.copy_s else "server"
        lines.append(
            f"      slower than expected (~{fmt_int(EXPECTED_COPY_ROWS_S)} rows/s): {bound}-bound. "
            "Every row updates two btrees (PK event_id, (symbol, ts, event_id)) and is WAL-logged "
            f"with fsync={pg['fsync']}; shared_buffers={pg['shared_buffers']}, "
            f"max_wal_size={pg['max_wal_size']} (checkpoints during the load add full-page writes)."
        )
    return lines


def build_rollups(db_url: str) -> dict[str, Any]:
    """(Re)build md_candles_1m / md_candles_1h with the migration's backfill SQL, then VACUUM.

    The two INSERTs run on two connections at once (two cores). VACUUM (ANALYZE) rather than
    ANALYZE alone: it also sets hint bits and the visibility map, as on a live table, so
    autovacuum does not wake up mid-measurement on a 2-core box.
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(ROLLUPS))
    conns = [psycopg.connect(db_url, autocommit=True) for _ in ROLLUPS]

    def one(conn: psycopg.Connection[Any], table: str, width: str) -> float:
        t = time.perf_counter()
        conn.execute(rollup_backfill_sql(table, width))
        return time.perf_counter() - t

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(len(ROLLUPS)) as pool:
            futures = {
                table: pool.submit(one, conn, table, width)
                for conn, (table, width) in zip(conns, ROLLUPS.items(), strict=True)
            }
            try:
                per_table = {table: f.result() for table, f in futures.items()}
            except BaseException:
                for conn in conns:  # Ctrl-C: don't wait a minute for the INSERTs
                    with contextlib.suppress(Exception):
                        conn.cancel_safe()
                raise
    finally:
        for conn in conns:
            conn.close()
    wall = time.perf_counter() - started
    with psycopg.connect(db_url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) md_ticks, " + ", ".join(ROLLUPS))
        vacuum_s = time.perf_counter() - t
        rows = {
            table: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in ROLLUPS
        }
    return {"wall_s": wall, "per_table_s": per_table, "vacuum_analyze_s": vacuum_s, "rows": rows}
