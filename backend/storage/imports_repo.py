"""The import's writes: a chunk of ticks and its `md_imports` row, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from backend.core.ticks import Tick
from backend.storage.ticks_repo import write_ticks


def committed_chunks(conn: psycopg.Connection[Any], file_sha256: str) -> set[int]:
    rows = conn.execute(
        "SELECT chunk_no FROM md_imports WHERE file_sha256 = %s", (file_sha256,)
    ).fetchall()
    return {int(r[0]) for r in rows}


def write_chunk(
    conn: psycopg.Connection[Any],
    *,
    file_sha256: str,
    file_name: str,
    chunk_no: int,
    ticks: Sequence[Tick],
    rows: int,
    bad_rows: int,
) -> int:
    """Store `ticks` (COPY, ON CONFLICT (event_id) DO NOTHING, candle rollups of what was
    inserted) and record the chunk, all or nothing; the rows inserted."""
    with conn.transaction():
        inserted = write_ticks(conn, ticks)  # its own transaction nests as a savepoint
        conn.execute(
            "INSERT INTO md_imports (file_sha256, chunk_no, file_name, rows, bad_rows, inserted) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (file_sha256, chunk_no) DO UPDATE SET "
            "inserted = EXCLUDED.inserted, committed_at = now()",
            (file_sha256, chunk_no, file_name, rows, bad_rows, inserted),
        )
    return inserted
