"""The throw-away database: where it runs, what it runs on and how big it grew (the figures the
report explains)."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from backend.settings import Settings
from backend.storage.ticks_repo import ROLLUPS
from tests.bench.text import say
from tests.support.servers import ServerUrls, create_database, start_servers


def throwaway_database(
    settings: Settings, stack: contextlib.ExitStack, tmp: Path
) -> tuple[ServerUrls, str, str]:
    """The configured servers (embedded ones where unset) and a fresh database (name, URL) on
    them; all of it stopped and dropped when the stack unwinds."""
    if settings.uses_embedded_pg:
        say("starting embedded PostgreSQL and Redis in " + str(tmp))
    servers = start_servers(settings, stack, tmp)
    name, url = create_database(
        servers.admin_url, stack, "tickstream_bench", lambda name: say(f"dropped database {name}")
    )
    return servers, name, url


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
