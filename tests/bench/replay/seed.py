"""Stored history for the benchmark: N ticks COPYed straight into md_ticks of a database kept
between runs, so only the first run pays for it.

Straight COPY, not the flusher: 10M ticks through the pipeline would take most of an hour, and a
replay reads md_ticks only (the candle rollups are not built: replays never read them). The
ticks come from the candles benchmark's generator (Poisson arrivals over one day, random walks,
feeder-shaped event ids). The database's `replay_bench_seed` row says what was seeded; a run
asking for the same reuses it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tests.bench.candles_bench.loading import load_ticks
from tests.bench.candles_bench.queries import DAY_US
from tests.bench.candles_bench.ticks import TickGenerator
from tests.bench.text import fmt_int, say
from tests.support.servers import migrate, with_database

# Not the feeder's symbols (BTCUSDT, ETHUSDT, ...): the live phases' ticks never fall in a replay.
SYMBOLS = ("ADAUSDT", "BNBUSDT", "DOGEUSDT", "XRPUSDT", "LTCUSDT",
           "DOTUSDT", "LINKUSDT", "AVAXUSDT", "TRXUSDT", "ATOMUSDT")  # fmt: skip
SOURCES = ("binance", "coinbase", "kraken")
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z: long before any live tick
SEED = 20261204
CHUNK = 500_000
MARKER = "replay_bench_seed"


@dataclass(frozen=True)
class Seeded:
    url: str
    ticks: int
    symbols: tuple[str, ...]
    from_us: int
    to_us: int  # exclusive
    seconds: float | None  # None: reused


def _spec(ticks: int, symbols: int) -> tuple[tuple[str, ...], int, int]:
    return SYMBOLS[:symbols], START_US, DAY_US


def _marker(url: str) -> tuple[int, str, int, int] | None:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute(
                sql.SQL("SELECT ticks, symbols, from_us, to_us FROM {}").format(
                    sql.Identifier(MARKER)
                )
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return (int(row[0]), str(row[1]), int(row[2]), int(row[3])) if row else None


def _exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def seed(admin_url: str, name: str, ticks: int, n_symbols: int, fresh: bool = False) -> Seeded:
    """Database `name` holding `ticks` stored ticks of `n_symbols` symbols over one day:
    reused when its marker says so (and not `fresh`), else (re)created and loaded."""
    symbols, from_us, span_us = _spec(ticks, n_symbols)
    url = with_database(admin_url, name)
    want = (ticks, ",".join(symbols), from_us, from_us + span_us)
    if not fresh and _exists(admin_url, name):
        if _marker(url) == want:
            migrate(url)  # newer migrations of main, if any; a no-op otherwise
            remove_live_ticks(url, symbols)
            say(f"reusing database {name}: {fmt_int(ticks)} ticks already seeded (--fresh reseeds)")
            return Seeded(url, ticks, symbols, from_us, from_us + span_us, None)
        say(f"database {name} holds another seed: dropping it")
    drop_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(url)
    say(f"seeding {fmt_int(ticks)} ticks ({len(symbols)} symbols, one day) into database {name}")
    started = time.perf_counter()
    gen = TickGenerator(symbols, SOURCES, ticks, from_us, span_us, SEED)
    stats = load_ticks(url, gen, 0, ticks, min(CHUNK, ticks))
    copied = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        # As on a live table: hint bits set and statistics known, so the first replay does not
        # pay for them (nor autovacuum wake up in the middle of it).
        conn.execute("VACUUM (ANALYZE) md_ticks")
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (ticks bigint, symbols text, from_us bigint, to_us bigint)"
            ).format(sql.Identifier(MARKER))
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(sql.Identifier(MARKER)),
            want,
        )
    took = time.perf_counter() - started
    say(
        f"seeded {fmt_int(ticks)} ticks in {took:.1f} s ({fmt_int(ticks / took)} ticks/s): binary "
        f"COPY {copied:.1f} s ({fmt_int(stats.rows_per_s)} rows/s), VACUUM ANALYZE "
        f"{took - copied:.1f} s; candle rollups not built (replays do not read them)"
    )
    return Seeded(url, ticks, symbols, from_us, from_us + span_us, took)


def remove_live_ticks(url: str, symbols: tuple[str, ...]) -> int:
    """Delete what the live phases stored (any other symbol), so the next run starts alike."""
    with contextlib.closing(psycopg.connect(url, autocommit=True)) as conn:
        cur = conn.execute("DELETE FROM md_ticks WHERE symbol <> ALL(%s)", (list(symbols),))
        for table in ("md_candles_1m", "md_candles_1h"):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE symbol <> ALL(%s)").format(sql.Identifier(table)),
                (list(symbols),),
            )
        return cur.rowcount
