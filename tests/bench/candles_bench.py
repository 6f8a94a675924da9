"""Candles benchmark: the rollup-backed `GET /symbols/{symbol}/candles` vs naive aggregation.

    python -m tests.bench.candles_bench [--ticks 10000000] [--symbols 5] [--runs 200] [--json PATH]

Answers the analytics issue ("measure the candles query over 10 million ticks and say how it
scales"). It loads N synthetic ticks into a throw-away database, builds the rollups with the
migration's own backfill SQL, then times, for each interval and for the latest and a random
middle window of `limit=500` buckets:

- ours end to end: the real API (uvicorn subprocess) over HTTP keep-alive;
- ours in SQL: `read_rollup`, the query the endpoint runs;
- the baseline: the same candles aggregated straight from md_ticks;

checks that the endpoint and the baseline agree, and repeats the 1m/latest SQL comparison after
the first 1M ticks to show how both grow with table size. The box is small and noisy, so it
reports medians, p95 and ratios against the baseline measured in the same run, and never asserts
on time. Servers: REDIS_URL / PG_URL when set, else embedded ones in a temp dir on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from backend.config import Settings
from backend.core.candles import INTERVALS_S, bucket_start
from backend.core.ticks import datetime_to_us, parse_ts_us, us_to_datetime, us_to_iso
from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.storage.candles_repo import ROLLUP_FOR, read_rollup
from backend.storage.migrate import upgrade
from backend.storage.ticks_repo import COLUMNS, ROLLUPS
from tests.support.processes import make_settings, running, settings_env
from tests.support.servers import free_port

LIMIT = 500
INTERVALS = ("1m", "5m", "15m", "1h")
WIDTHS = {"1m": "1 minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour"}
US_PER_S = 1_000_000
DAY_US = 86_400 * US_PER_S
REL_TOL = 1e-9
PRINTED_PLANS = ("1m_latest", "1h_latest")  # the JSON has every latest window's plans
EXPECTED_COPY_ROWS_S = 150_000  # what COPY reaches on the 2-core dev box; below it we say why

# --- the SQL under test ----------------------------------------------------------------------


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

# --- synthetic ticks -------------------------------------------------------------------------

# Start price, decimals (tick size), median trade size: rough real-world magnitudes.
_INSTRUMENTS = {
    "BTCUSDT": (64_000.0, 2, 0.02),
    "ETHUSDT": (3_400.0, 2, 0.3),
    "XAUUSD": (2_400.0, 2, 1.0),
    "EURUSD": (1.08, 5, 10_000.0),
    "AAPL": (190.0, 2, 50.0),
}
_OTHER = (100.0, 2, 10.0)
DAILY_VOLATILITY = 0.03


class TickGenerator:
    """Ticks in event-time order, in chunks, deterministic for a seed.

    Poisson arrivals at a constant rate over the span with millisecond timestamps (as exchanges
    send them, so same-ms ties happen and the (ts, event_id) tie-break is exercised), a random
    walk per symbol (~3 %/day), log-normal trade sizes, and feeder-shaped unique event_ids
    (`run-source-symbol-seq`, seq zero-padded so the primary key grows at its right edges like
    exchange trade ids; random UUIDs would only slow the load, not the reads).
    """

    def __init__(
        self,
        symbols: Sequence[str],
        sources: Sequence[str],
        total: int,
        start_us: int,
        span_us: int,
        seed: int,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.total, self.start_us, self.span_us = total, start_us, span_us
        self.symbols = list(symbols)
        self.n_sources = len(sources)
        spec = [_INSTRUMENTS.get(s, _OTHER) for s in symbols]
        self.log_price = np.log([p for p, _, _ in spec])
        self.decimals = [d for _, d, _ in spec]
        self.log_size = np.log([v for _, _, v in spec])
        per_symbol_per_day = total / len(symbols) / (span_us / DAY_US)
        self.sigma = DAILY_VOLATILITY / max(per_symbol_per_day, 1.0) ** 0.5
        self.symbol_bytes = np.array([s.encode() for s in symbols], dtype=np.bytes_)
        self.source_bytes = np.array([s.encode() for s in sources], dtype=np.bytes_)
        run = f"bench{seed}"
        self.prefixes = np.array(
            [f"{run}-{src}-{sym}-".encode() for sym in symbols for src in sources],
            dtype=np.bytes_,
        )
        self.next_seq = np.zeros(len(symbols) * len(sources), np.int64)

    def time_at(self, row: int) -> int:
        """Where row `row` falls in event time (µs, ms-aligned): rows spread evenly."""
        return (self.start_us + self.span_us * row // self.total) // 1000 * 1000

    def columns(self, lo: int, hi: int) -> list[tuple[str, np.ndarray]]:
        """Rows [lo, hi) as (PostgreSQL type, values) in md_ticks' COPY column order."""
        n = hi - lo
        rng = self.rng
        t0, t1 = self.time_at(lo) // 1000, self.time_at(hi) // 1000
        ts = np.sort(rng.integers(t0, max(t1, t0 + 1), n)) * 1000
        sym = rng.integers(0, len(self.symbols), n)
        src = rng.integers(0, self.n_sources, n)
        price = np.empty(n)
        volume = np.empty(n)
        for i in range(len(self.symbols)):
            mask = sym == i
            count = int(mask.sum())
            if count == 0:
                continue
            walk = self.log_price[i] + np.cumsum(rng.normal(0.0, self.sigma, count))
            self.log_price[i] = walk[-1]
            price[mask] = np.round(np.exp(walk), self.decimals[i])
            sizes = rng.lognormal(self.log_size[i], 1.0, count)
            volume[mask] = np.maximum(np.round(sizes, 6), 1e-6)
        combo = sym * self.n_sources + src
        seq = np.empty(n, np.int64)
        for c in range(len(self.next_seq)):
            mask = combo == c
            count = int(mask.sum())
            seq[mask] = self.next_seq[c] + np.arange(1, count + 1)
            self.next_seq[c] += count
        event_id = np.char.add(self.prefixes[combo], np.char.zfill(seq.astype(np.bytes_), 9))
        received = ts + rng.integers(200, 50_000, n)  # 0.2-50 ms of transport
        return [
            ("text", event_id),
            ("text", self.symbol_bytes[sym]),
            ("timestamptz", ts),
            ("float8", price),
            ("float8", volume),
            ("text", self.source_bytes[src]),
            ("int8", seq),
            ("timestamptz", received),
        ]


# --- binary COPY, built with numpy -------------------------------------------------------------

_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01: the origin of binary timestamps
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_BINARY = {"int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}


def _big_endian(values: np.ndarray, dtype: str) -> np.ndarray:
    arr = np.ascontiguousarray(values.astype(dtype))
    return arr.view(np.uint8).reshape(len(arr), -1)


def _scatter(out: np.ndarray, pos: np.ndarray, mat: np.ndarray, lengths: Any = None) -> None:
    """Write row i of `mat` (its first lengths[i] bytes) at out[pos[i]:], for all rows at once."""
    idx = pos[:, None] + np.arange(mat.shape[1])
    if lengths is None:
        out[idx] = mat
    else:
        keep = np.arange(mat.shape[1]) < lengths[:, None]
        out[idx[keep]] = mat[keep]


def copy_payload(columns: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """The rows in PostgreSQL's binary COPY format, with no per-row Python.

    Per-row `write_row` tops out near 200k rows/s on this box, below what the server takes in;
    built this way a 500k-row chunk takes ~0.6 s, overlapped with the previous chunk's COPY.
    """
    n = len(columns[0][1])
    fields: list[tuple[np.ndarray, np.ndarray | None]] = []
    for kind, values in columns:
        if kind == "text":
            arr = np.ascontiguousarray(values, dtype=np.bytes_)
            mat = arr.view(np.uint8).reshape(n, arr.dtype.itemsize)
            fields.append((mat, np.char.str_len(arr).astype(np.int64)))
        else:
            raw = values - _PG_EPOCH_US if kind == "timestamptz" else values
            fields.append((_big_endian(raw, _BINARY[kind]), None))
    row_len = np.full(n, 2, np.int64)
    for mat, lengths in fields:
        row_len += 4 + (mat.shape[1] if lengths is None else lengths)
    pos = np.zeros(n, np.int64)
    np.cumsum(row_len[:-1], out=pos[1:])
    out = np.empty(int(row_len.sum()), np.uint8)
    _scatter(out, pos, _big_endian(np.full(n, len(fields)), ">i2"))
    pos = pos + 2
    for mat, lengths in fields:
        size = np.full(n, mat.shape[1], np.int64) if lengths is None else lengths
        _scatter(out, pos, _big_endian(size, ">i4"))
        pos += 4
        _scatter(out, pos, mat, lengths)
        pos += size
    return _COPY_HEADER + out.tobytes() + _COPY_TRAILER


# --- output helpers ----------------------------------------------------------------------------

_T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", flush=True)


def fmt_int(value: float) -> str:
    return f"{int(value):,}"


def fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"x{value:.2f}" if value < 10 else f"x{value:,.0f}"


def fmt_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned text: first column left, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {
        "runs": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "min_ms": float(ms.min()),
        "mean_ms": float(ms.mean()),
    }


# --- servers and the throw-away database -------------------------------------------------------


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def start_servers(
    settings: Settings, stack: contextlib.ExitStack, tmp: Path
) -> tuple[str, str, bool]:
    """(admin PG URL, Redis URL, embedded?): the configured servers, else embedded ones."""
    redis_url = settings.effective_redis_url
    if settings.uses_embedded_redis:
        redis_server = EmbeddedRedis(tmp / "redis", free_port())
        redis_server.start()
        stack.callback(redis_server.stop)
        redis_url = redis_server.url
    admin_url = settings.psycopg_url
    if settings.uses_embedded_pg:
        say("starting embedded PostgreSQL and Redis in " + str(tmp))
        pg_server = EmbeddedPostgres(tmp / "pg", free_port())
        pg_server.start()
        stack.callback(pg_server.stop)
        admin_url = pg_server.url
    return admin_url, redis_url, settings.uses_embedded_pg


def create_database(admin_url: str, stack: contextlib.ExitStack) -> tuple[str, str]:
    """A fresh database, dropped when the stack unwinds (errors and Ctrl-C included)."""
    name = f"tickstream_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        say(f"dropped database {name}")

    stack.callback(drop)
    return name, with_database(admin_url, name)


def machine_facts(db_url: str, embedded: bool) -> dict[str, Any]:
    with psycopg.connect(db_url, autocommit=True) as conn:

        def show(name: str) -> str:
            return str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]

        return {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "psycopg": psycopg.__version__,
            "pg_version": conn.execute("SELECT version()").fetchone()[0],  # type: ignore[index]
            "pg_server_version": show("server_version"),
            "pg_embedded": embedded,
            "pg_jit_available": conn.execute("SELECT pg_jit_available()").fetchone()[0],  # type: ignore[index]
            "pg_settings": {
                name: show(name)
                for name in (
                    "shared_buffers",
                    "work_mem",
                    "effective_cache_size",
                    "random_page_cost",
                    "max_parallel_workers_per_gather",
                    "jit",
                    "max_wal_size",
                    "fsync",
                )
            },
        }


def server_counters(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """WAL position and checkpoint count, to explain a slow load (best effort)."""
    out: dict[str, int] = {}
    with contextlib.suppress(psycopg.Error):
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
        out["wal_bytes"] = int(row[0]) if row else 0
    for query in (
        "SELECT num_timed + num_requested FROM pg_stat_checkpointer",  # PostgreSQL 17+
        "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
    ):
        try:
            row = conn.execute(query).fetchone()
        except psycopg.Error:
            continue
        out["checkpoints"] = int(row[0]) if row else 0
        break
    return out


# --- loading -----------------------------------------------------------------------------------


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


def table_stats(db_url: str) -> list[dict[str, Any]]:
    """Whether autovacuum / autoanalyze ran (and so may have run during the measurements)."""
    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT relname, n_live_tup, last_vacuum, last_autovacuum, last_analyze, "
            "last_autoanalyze, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables "
            "WHERE relname LIKE 'md_%' ORDER BY relname"
        )
        return cur.fetchall()


def table_sizes(db_url: str) -> dict[str, int]:
    names = ["md_ticks", "md_ticks_indexes", *ROLLUPS]
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_table_size('md_ticks'), pg_indexes_size('md_ticks'), "
            + ", ".join(f"pg_total_relation_size('{t}')" for t in ROLLUPS)
        ).fetchone()
    return dict(zip(names, map(int, row or ()), strict=True))


# --- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    interval: str
    kind: str  # "latest": what dashboards hit; "middle": a random window inside the data
    from_us: int
    to_us: int

    @property
    def params(self) -> dict[str, str]:
        return {
            "interval": self.interval,
            "from": str(self.from_us // 1000),
            "to": str(self.to_us // 1000),
            "limit": str(LIMIT),
        }

    def sql_params(self, symbol: str) -> tuple[str, Any, Any]:
        return symbol, us_to_datetime(self.from_us), us_to_datetime(self.to_us)


def windows_for(
    interval: str, start_us: int, end_us: int, rng: np.random.Generator
) -> list[Window]:
    """`limit` buckets ending with the bucket of the newest tick, and `limit` buckets around a
    random point in the middle 60 % of the data (clipped by nothing: wider than the data, it
    simply covers all of it)."""
    width = INTERVALS_S[interval] * US_PER_S
    latest_to = bucket_start(end_us - 1, width) + width
    centre = start_us + int((end_us - start_us) * rng.uniform(0.2, 0.8))
    middle_to = bucket_start(centre, width) + LIMIT // 2 * width
    return [
        Window(interval, "latest", latest_to - LIMIT * width, latest_to),
        Window(interval, "middle", middle_to - LIMIT * width, middle_to),
    ]


async def sample(call: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        await call()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t)
    return out


async def sample_budgeted(
    call: Callable[[], Awaitable[Any]], max_runs: int, min_runs: int, budget_s: float
) -> list[float]:
    """As many runs as fit in `budget_s` (one untimed warm-up sizes it), within [min, max]."""
    t = time.perf_counter()
    await call()
    first = max(time.perf_counter() - t, 1e-4)
    runs = int(min(max_runs, max(min_runs, budget_s // first)))
    return await sample(call, runs, warmup=0)


async def baseline_rows(
    conn: psycopg.AsyncConnection[Any], symbol: str, window: Window
) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        BASELINE_SQL.format(width=WIDTHS[window.interval]), window.sql_params(symbol)
    )
    return await cur.fetchall()


async def ticks_in(conn: psycopg.AsyncConnection[Any], symbol: str, window: Window) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM md_ticks WHERE symbol = %s AND ts >= %s AND ts < %s",
        window.sql_params(symbol),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


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


def compare(api_candles: list[dict[str, Any]], base: list[tuple[Any, ...]]) -> list[str]:
    """Differences between the endpoint's candles and the baseline's (empty: they agree).

    Open/high/low/close/trades must be identical; volume and vwap within 1e-9 relative (the
    baseline sums float8, the rollups exact NUMERIC).
    """
    problems: list[str] = []
    ours = {parse_ts_us(c["ts"]): c for c in api_candles}
    theirs = {datetime_to_us(r[0]): r for r in base}
    if ours.keys() != theirs.keys():
        only_ours = [us_to_iso(b) for b in sorted(ours.keys() - theirs.keys())[:3]]
        only_base = [us_to_iso(b) for b in sorted(theirs.keys() - ours.keys())[:3]]
        problems.append(
            f"buckets differ: {len(ours)} vs {len(theirs)}; "
            f"only endpoint {only_ours}, only baseline {only_base}"
        )

    def close(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return a is b
        return abs(a - b) <= REL_TOL * max(abs(a), abs(b))

    for bucket in sorted(ours.keys() & theirs.keys()):
        c = ours[bucket]
        _b, open_, high, low, close_, volume, vwap, trades = theirs[bucket]
        expected = {"open": open_, "high": high, "low": low, "close": close_, "trades": trades}
        for key, value in expected.items():
            if c[key] != value:
                problems.append(f"{us_to_iso(bucket)} {key}: endpoint {c[key]!r} != {value!r}")
        for key, value in (("volume", volume), ("vwap", vwap)):
            if not close(c[key], value):
                problems.append(f"{us_to_iso(bucket)} {key}: endpoint {c[key]!r} vs {value!r}")
    return problems


async def measure_sql_scale(
    db_url: str, symbol: str, window: Window, runs: int, budget_s: float
) -> dict[str, Any]:
    """1m/latest in SQL, ours vs baseline, at the current table size."""
    table_name = ROLLUP_FOR[window.interval]
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        rows = await ticks_in(conn, symbol, window)
        ours = await sample(
            lambda: read_rollup(
                conn, table_name, symbol, window.from_us, window.to_us, width_us(window.interval)
            ),
            runs,
        )
        base = await sample_budgeted(lambda: baseline_rows(conn, symbol, window), runs, 5, budget_s)
        cur = await conn.execute(
            "SELECT count(*), pg_table_size('md_ticks') + pg_indexes_size('md_ticks') FROM md_ticks"
        )
        loaded, size = await cur.fetchone()  # type: ignore[misc]
    ours_s, base_s = summarize(ours), summarize(base)
    return {
        "loaded_ticks": int(loaded),
        "md_ticks_bytes": int(size),
        "window": asdict(window),
        "ticks_in_window": rows,
        "ours_sql": ours_s,
        "baseline_sql": base_s,
        "ratio_p50": base_s["p50_ms"] / ours_s["p50_ms"],
        "ratio_p95": base_s["p95_ms"] / ours_s["p95_ms"],
    }


async def measure_windows(
    db_url: str,
    api_url: str,
    symbol: str,
    windows: Sequence[Window],
    runs: int,
    budget_s: float,
) -> list[dict[str, Any]]:
    """For each window: HTTP (ours), read_rollup (ours), baseline, and the correctness check."""
    results = []
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        with httpx.Client(base_url=api_url, timeout=120) as client:
            path = f"/symbols/{symbol}/candles"
            for w in windows:
                say(f"  {w.interval:>3} {w.kind}: HTTP x{runs}, SQL x{runs}, baseline ...")
                rows = await ticks_in(conn, symbol, w)
                last: list[httpx.Response] = []

                async def http_call(w: Window = w, last: list[httpx.Response] = last) -> None:
                    response = client.get(path, params=w.params)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} {w.params}: {response.status_code}")
                    last[:] = [response]

                http = await sample(http_call, runs)
                body = last[0].json()
                table_name = ROLLUP_FOR[w.interval]
                ours = await sample(
                    lambda w=w, t=table_name: read_rollup(
                        conn, t, symbol, w.from_us, w.to_us, width_us(w.interval)
                    ),
                    runs,
                )
                base_result: list[list[tuple[Any, ...]]] = []

                async def base_call(w: Window = w, out: list[Any] = base_result) -> None:
                    out[:] = [await baseline_rows(conn, symbol, w)]

                base = await sample_budgeted(base_call, runs, 5, budget_s)
                problems = compare(body["candles"], base_result[0])
                if body["live"]["pending_ticks_included"]:
                    problems.append("the endpoint merged outbox ticks: not a clean comparison")
                h, o, b = summarize(http), summarize(ours), summarize(base)
                results.append(
                    {
                        "interval": w.interval,
                        "window": w.kind,
                        "from": us_to_iso(w.from_us),
                        "to": us_to_iso(w.to_us),
                        "ticks_in_window": rows,
                        "candles": len(body["candles"]),
                        "rollup_rows_read": len(
                            await read_rollup(
                                conn, table_name, symbol, w.from_us, w.to_us, width_us(w.interval)
                            )
                        ),
                        "http": h,
                        "ours_sql": o,
                        "baseline_sql": b,
                        "ratio_baseline_vs_sql_p50": b["p50_ms"] / o["p50_ms"],
                        "ratio_baseline_vs_sql_p95": b["p95_ms"] / o["p95_ms"],
                        "ratio_baseline_vs_http_p50": b["p50_ms"] / h["p50_ms"],
                        "ratio_baseline_vs_http_p95": b["p95_ms"] / h["p95_ms"],
                        "correct": not problems,
                        "problems": problems[:10],
                    }
                )
    return results


async def explain_plans(db_url: str, symbol: str, windows: Sequence[Window]) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        return {
            f"{w.interval}_{w.kind}": await explain_both(conn, symbol, w)
            for w in windows
            if w.kind == "latest"
        }


# --- report ------------------------------------------------------------------------------------


def results_table(results: Sequence[dict[str, Any]]) -> str:
    headers = [
        "interval/window",
        "ticks in win",
        "candles",
        "HTTP p50",
        "p95",
        "p99",
        "SQL p50",
        "p95",
        "raw p50",
        "p95",
        "runs",
        "raw/SQL p50",
        "raw/HTTP p50",
        "check",
    ]
    rows = []
    for r in results:
        h, o, b = r["http"], r["ours_sql"], r["baseline_sql"]
        rows.append(
            [
                f"{r['interval']} {r['window']}",
                fmt_int(r["ticks_in_window"]),
                str(r["candles"]),
                fmt_ms(h["p50_ms"]),
                fmt_ms(h["p95_ms"]),
                fmt_ms(h["p99_ms"]),
                fmt_ms(o["p50_ms"]),
                fmt_ms(o["p95_ms"]),
                fmt_ms(b["p50_ms"]),
                fmt_ms(b["p95_ms"]),
                str(b["runs"]),
                fmt_ratio(r["ratio_baseline_vs_sql_p50"]),
                fmt_ratio(r["ratio_baseline_vs_http_p50"]),
                "OK" if r["correct"] else "MISMATCH",
            ]
        )
    return table(headers, rows)


def scaling_table(points: Sequence[dict[str, Any]]) -> str:
    headers = [
        "loaded ticks",
        "md_ticks+idx",
        "ticks in win",
        "rollup SQL p50",
        "p95",
        "raw p50",
        "p95",
        "runs",
        "raw/rollup p50",
    ]
    rows = [
        [
            fmt_int(p["loaded_ticks"]),
            fmt_bytes(p["md_ticks_bytes"]),
            fmt_int(p["ticks_in_window"]),
            fmt_ms(p["ours_sql"]["p50_ms"]),
            fmt_ms(p["ours_sql"]["p95_ms"]),
            fmt_ms(p["baseline_sql"]["p50_ms"]),
            fmt_ms(p["baseline_sql"]["p95_ms"]),
            str(p["baseline_sql"]["runs"]),
            fmt_ratio(p["ratio_p50"]),
        ]
        for p in points
    ]
    return table(headers, rows)


def scaling_summary(points: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]) -> str:
    lines = []
    if len(points) == 2:
        small, big = points
        growth = big["loaded_ticks"] / small["loaded_ticks"]
        lines.append(
            f"table x{growth:.0f} ({fmt_int(small['loaded_ticks'])} -> "
            f"{fmt_int(big['loaded_ticks'])} ticks, same density): rollup p50 "
            f"x{big['ours_sql']['p50_ms'] / small['ours_sql']['p50_ms']:.2f}, raw p50 "
            f"x{big['baseline_sql']['p50_ms'] / small['baseline_sql']['p50_ms']:.2f} "
            f"(ticks in the 1m window {fmt_int(small['ticks_in_window'])} -> "
            f"{fmt_int(big['ticks_in_window'])})"
        )
    latest = [r for r in results if r["window"] == "latest"]
    if latest:
        per_100k = [
            f"{r['interval']} {r['baseline_sql']['p50_ms'] / r['ticks_in_window'] * 1e5:.0f} ms"
            for r in latest
            if r["ticks_in_window"]
        ]
        lines.append(
            "raw aggregation per 100k ticks in the window (latest): " + ", ".join(per_100k)
        )
        lines.append(
            "rollup SQL p50 over intervals (latest): "
            + ", ".join(
                f"{r['interval']} {fmt_ms(r['ours_sql']['p50_ms'])} ms "
                f"({r['rollup_rows_read']} rows)"
                for r in latest
            )
        )
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.candles_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--ticks", type=int, default=10_000_000, help="ticks to load (10M)")
    p.add_argument("--symbols", type=int, default=5, help="symbols they are spread over (5)")
    p.add_argument("--runs", type=int, default=200, help="timed calls per measurement (200)")
    p.add_argument("--days", type=float, default=7.0, help="event-time span of the data (7)")
    p.add_argument("--chunk", type=int, default=500_000, help="rows per COPY (500k)")
    p.add_argument(
        "--scale-at", type=int, default=1_000_000, help="also measure at this many ticks (1M)"
    )
    p.add_argument(
        "--baseline-budget",
        type=float,
        default=10.0,
        help="seconds per window for baseline runs (>= 5 runs, <= --runs)",
    )
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = p.parse_args(argv)
    if args.ticks < 1_000 or args.symbols < 1 or args.runs < 1 or args.chunk < 1:
        p.error("--ticks >= 1000, --symbols, --runs, --chunk >= 1")
    return args


def pick_symbols(settings: Settings, count: int) -> list[str]:
    names = list(dict.fromkeys(settings.symbols))[:count]
    return names + [f"SYM{i:03d}" for i in range(len(names), count)]


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run the benchmark; 0 when the endpoint agreed with the baseline everywhere, else 1."""
    args = parse_args(argv)
    settings = settings or Settings()
    started = time.perf_counter()
    symbols = pick_symbols(settings, args.symbols)
    symbol = symbols[0]
    span_us = int(args.days * DAY_US)
    end_us = bucket_start(time.time_ns() // 1000, 60 * US_PER_S)
    start_us = end_us - span_us
    scale_at = min(args.scale_at, args.ticks // 10)
    per_s = args.ticks / (span_us / US_PER_S)
    say(
        f"{fmt_int(args.ticks)} ticks over {len(symbols)} symbols ({', '.join(symbols)}), "
        f"{args.days:g} days of event time ending {us_to_iso(end_us)}: {per_s:,.1f} ticks/s in "
        f"all, {per_s / len(symbols):,.2f}/s per symbol (~{per_s / len(symbols) * 60:,.0f} per "
        f"1m candle); measuring {symbol}"
    )
    report: dict[str, Any] = {
        "params": {
            "ticks": args.ticks,
            "symbols": symbols,
            "measured_symbol": symbol,
            "runs": args.runs,
            "limit": LIMIT,
            "days": args.days,
            "data_from": us_to_iso(start_us),
            "data_to": us_to_iso(end_us),
            "ticks_per_s": per_s,
            "ticks_per_s_per_symbol": per_s / len(symbols),
            "chunk": args.chunk,
            "seed": args.seed,
            "baseline_budget_s": args.baseline_budget,
        }
    }
    rng = np.random.default_rng(args.seed + 1)
    gen = TickGenerator(symbols, settings.sources, args.ticks, start_us, span_us, args.seed)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-bench-")))
        admin_url, redis_url, embedded = start_servers(settings, stack, tmp)
        db_name, db_url = create_database(admin_url, stack)
        report["params"]["database"] = db_name
        say(f"database {db_name}: migrating")
        upgrade(settings.model_copy(update={"pg_url": db_url}))
        facts = machine_facts(db_url, embedded)
        report["machine"] = facts
        say(
            f"{facts['cpu_count']} CPUs, PostgreSQL {facts['pg_server_version']}"
            f"{' (embedded)' if embedded else ''}, "
            + ", ".join(f"{k}={v}" for k, v in facts["pg_settings"].items())
        )

        loads: list[LoadStats] = []
        scaling: list[dict[str, Any]] = []
        if scale_at:
            say(f"loading the first {fmt_int(scale_at)} ticks")
            loads.append(load_ticks(db_url, gen, 0, scale_at, args.chunk))
            say(describe_load(loads[-1], facts)[0])
            small = build_rollups(db_url)
            say(f"rollups for {fmt_int(scale_at)} ticks: {small['wall_s']:.1f} s; measuring")
            window = windows_for("1m", start_us, gen.time_at(scale_at), rng)[0]
            scaling.append(
                asyncio.run(
                    measure_sql_scale(db_url, symbol, window, args.runs, args.baseline_budget)
                )
            )
        say(f"loading ticks {fmt_int(scale_at)}..{fmt_int(args.ticks)}")
        loads.append(load_ticks(db_url, gen, scale_at, args.ticks, args.chunk))
        rows_now = sum(s.rows for s in loads)
        total = LoadStats(
            rows_now,
            sum(s.wall_s for s in loads),
            sum(s.copy_s for s in loads),
            sum(s.build_s for s in loads),
            sum(s.chunks for s in loads),
            sum(s.wal_bytes or 0 for s in loads)
            if all(s.wal_bytes is not None for s in loads)
            else None,
            sum(s.checkpoints or 0 for s in loads)
            if all(s.checkpoints is not None for s in loads)
            else None,
        )
        for line in describe_load(total, facts):
            say(line)
        say(f"building rollups over {fmt_int(rows_now)} ticks (migration 0002 backfill SQL)")
        rollups = build_rollups(db_url)
        say(
            f"rollups: {rollups['wall_s']:.1f} s wall ("
            + ", ".join(f"{t} {s:.1f} s" for t, s in rollups["per_table_s"].items())
            + f", in parallel); VACUUM (ANALYZE) {rollups['vacuum_analyze_s']:.1f} s"
        )
        sizes = table_sizes(db_url)
        report["load"] = {
            "total": {**asdict(total), "rows_per_s": total.rows_per_s},
            "phases": [{**asdict(s), "rows_per_s": s.rows_per_s} for s in loads],
            "rollups": rollups,
            "sizes_bytes": sizes,
        }
        window = windows_for("1m", start_us, end_us, rng)[0]
        scaling.append(
            asyncio.run(measure_sql_scale(db_url, symbol, window, args.runs, args.baseline_budget))
        )
        report["scaling"] = scaling

        windows = [w for i in INTERVALS for w in windows_for(i, start_us, end_us, rng)]
        procs = stack.enter_context(
            running(settings_env(make_settings(redis_url, db_url)), tmp / "logs")
        )
        say("starting the API")
        try:
            procs.start_api()
        except AssertionError:
            print(procs.log("api")[-4000:], file=sys.stderr)
            raise
        say(f"measuring {len(windows)} windows")
        results = asyncio.run(
            measure_windows(db_url, procs.api_url, symbol, windows, args.runs, args.baseline_budget)
        )
        report["results"] = results
        say("EXPLAIN (ANALYZE, BUFFERS)")
        report["explain"] = asyncio.run(explain_plans(db_url, symbol, windows))
        report["pg_table_stats"] = table_stats(db_url)

    ok = all(r["correct"] for r in results)
    report["correctness"] = {
        "ok": ok,
        "checked_windows": len(results),
        "rule": "open/high/low/close/trades identical, volume/vwap within 1e-9 relative",
    }
    report["runtime_s"] = time.perf_counter() - started
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        say(f"wrote {args.json}")
    return 0 if ok else 1


def print_report(report: dict[str, Any]) -> None:
    p, m = report["params"], report["machine"]
    load, rollups = report["load"]["total"], report["load"]["rollups"]
    sizes = report["load"]["sizes_bytes"]
    print()
    print(
        f"=== candles benchmark: {fmt_int(p['ticks'])} ticks, {len(p['symbols'])} symbols, "
        f"{p['days']:g} days ({p['ticks_per_s']:,.1f} ticks/s, "
        f"{p['ticks_per_s_per_symbol']:,.2f}/s per symbol); symbol {p['measured_symbol']}, "
        f"limit={LIMIT} ==="
    )
    print(
        f"machine: {m['cpu_count']} CPUs; PostgreSQL {m['pg_server_version']}"
        f"{' (embedded)' if m['pg_embedded'] else ''}; "
        + ", ".join(f"{k}={v}" for k, v in m["pg_settings"].items())
    )
    print(
        f"load: {fmt_int(load['rows'])} rows in {load['wall_s']:.1f} s = "
        f"{fmt_int(load['rows_per_s'])} rows/s; rollups {rollups['wall_s']:.1f} s "
        f"({', '.join(f'{t} {s:.1f} s' for t, s in rollups['per_table_s'].items())}); "
        f"VACUUM (ANALYZE) {rollups['vacuum_analyze_s']:.1f} s"
    )
    print(
        "sizes: "
        + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in sizes.items())
        + "; rollup rows "
        + ", ".join(f"{k} {fmt_int(v)}" for k, v in rollups["rows"].items())
    )
    print()
    print(
        "latency in ms. HTTP = GET /symbols/{s}/candles through uvicorn (keep-alive). SQL = "
        "read_rollup (query + decoding the rows into Candles, in this process). raw = the "
        "baseline aggregation over md_ticks (runs: as many as fit in --baseline-budget). "
        "Ratios = raw p50 / ours p50."
    )
    print(results_table(report["results"]))
    print()
    print("scaling (1m latest window, SQL only):")
    print(scaling_table(report["scaling"]))
    print(scaling_summary(report["scaling"], report["results"]))
    print()
    for name, plans in report["explain"].items():
        if name not in PRINTED_PLANS:
            continue
        for who, plan in plans.items():
            print(f"--- EXPLAIN (ANALYZE, BUFFERS) {name}: {who}")
            print(plan)
    print()
    c = report["correctness"]
    print(
        f"correctness ({c['checked_windows']} windows; {c['rule']}): "
        + ("OK" if c["ok"] else "MISMATCH")
    )
    for r in report["results"]:
        for problem in r["problems"]:
            print(f"  {r['interval']} {r['window']}: {problem}")
    print(f"runtime: {report['runtime_s']:.0f} s")


def _sigterm_as_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Clean up on kill as on Ctrl-C, and honour Ctrl-C even when started as a background job
    # (which inherits SIGINT ignored).
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
