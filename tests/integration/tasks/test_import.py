"""`python -m tasks.import` against a real PostgreSQL: bad rows reported by line, the rest stored
once with exact candles, re-imports insert nothing, Parquet = CSV, and a stopped import resumes."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from redis import Redis

from backend.bus.keys import Keys
from backend.core.candles import from_ticks
from backend.core.ticks import Tick, datetime_to_us
from backend.core.view import View
from backend.settings import Settings
from tasks.history_import import import_file
from tests import reference
from tests.support.history import write_history_csv
from tests.support.processes import settings_env


def stored(pg_url: str) -> list[Tick]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT event_id, symbol, ts, price, volume, source, seq, received_at FROM md_ticks"
        ).fetchall()
    return [
        Tick(e, s, datetime_to_us(ts), p, v, src, seq, datetime_to_us(r))
        for e, s, ts, p, v, src, seq, r in rows
    ]


def stored_candles(pg_url: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT symbol, bucket, open_price, high, low, close_price, trades, volume "
            "FROM md_candles_1m"
        ).fetchall()
    return {(r[0], datetime_to_us(r[1])): tuple(r[2:]) for r in rows}


def content(row: list[str]) -> tuple[Any, ...]:
    return (row[0], int(row[1]) * 1000, float(row[2]), float(row[3]), row[4], int(row[5]))


def run_cli(
    settings: Settings, *args: str, rebuild: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasks.import", *args, *([] if rebuild else ["--no-rebuild"])],
        env=settings_env(settings), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_an_import_stores_every_good_row_once_and_reports_every_bad_one_by_line(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    good, bad_lines = write_history_csv(path, 20_000)
    errors = tmp_path / "errors.csv"

    done = run_cli(settings, str(path), "--chunk-rows", "4000", "--errors-out", str(errors))

    assert done.returncode == 0, done.stderr
    with errors.open() as f:
        reported = list(csv.DictReader(f))
    assert {int(r["line"]) for r in reported} == bad_lines
    assert {r["field"] for r in reported} == {"price", "symbol", "ts", "volume", "seq"}
    ticks = stored(settings.psycopg_url)
    assert Counter((t.symbol, t.ts_us, t.price, t.volume, t.source, t.seq) for t in ticks) == (
        Counter(content(r) for r in good)
    )
    assert f"{len(good)} inserted" in done.stdout
    # Candles: the rollups equal the reference over what was stored.
    candles = stored_candles(settings.psycopg_url)
    expected = {}
    for symbol in ("AAA", "BBB"):
        mine = [t for t in ticks if t.symbol == symbol]
        for bucket, c in reference.candles(mine, 60_000_000).items():
            expected[(symbol, bucket)] = (c["open"], c["high"], c["low"], c["close"], c["trades"])
    assert {k: v[:5] for k, v in candles.items()} == expected

    again = run_cli(settings, str(path), "--chunk-rows", "4000", "--force")
    assert again.returncode == 0 and " 0 inserted" in again.stdout, again.stdout
    assert stored_candles(settings.psycopg_url) == candles
    skipped = run_cli(settings, str(path), "--chunk-rows", "4000")
    assert (
        "6 chunks (6 already imported, skipped)" in skipped.stdout
        and " 0 inserted" in skipped.stdout
    )


def test_a_parquet_file_of_the_same_rows_derives_the_same_ticks(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    good, bad_lines = write_history_csv(path, 3_000, seed=2)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    table = pa.table({name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])})
    parquet = tmp_path / "history.parquet"
    pq.write_table(table, parquet)

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(settings.psycopg_url)

    from_parquet = import_file(connect, parquet, fmt="parquet", chunk_rows=1_000)
    assert from_parquet.inserted == len(good)
    assert {e.line for e in from_parquet.errors} == bad_lines
    from_csv = import_file(connect, path, fmt="csv", chunk_rows=700)
    assert (from_csv.inserted, from_csv.already_stored) == (0, len(good))
    assert len(stored(settings.psycopg_url)) == len(good)
    assert from_candles_match(settings, stored(settings.psycopg_url))


def from_candles_match(settings: Settings, ticks: list[Tick]) -> bool:
    got = stored_candles(settings.psycopg_url)
    for symbol in {t.symbol for t in ticks}:
        for bucket, c in from_ticks([t for t in ticks if t.symbol == symbol], 60_000_000).items():
            if got[(symbol, bucket)][4] != c.trades:
                return False
    return True


def test_a_stopped_import_resumes_after_its_last_committed_chunk(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    good, _ = write_history_csv(path, 6_000, seed=3)

    first = run_cli(settings, str(path), "--chunk-rows", "1000", "--stop-after-chunks", "2")
    assert first.returncode == 0, first.stderr
    with psycopg.connect(settings.psycopg_url) as conn:
        chunks = conn.execute("SELECT chunk_no FROM md_imports ORDER BY 1").fetchall()
    assert [c[0] for c in chunks] == [0, 1]
    assert 0 < len(stored(settings.psycopg_url)) < len(good)

    rest = run_cli(settings, str(path), "--chunk-rows", "1000")
    assert rest.returncode == 0 and "2 already imported, skipped" in rest.stdout, rest.stdout
    ticks = stored(settings.psycopg_url)
    assert len(ticks) == len(good) == len({t.event_id for t in ticks})


def test_an_unmappable_file_is_refused_before_anything_is_written(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "nope.csv"
    path.write_text("symbol,when,price\nAAA,1,2\n")
    done = run_cli(settings, str(path))
    assert done.returncode == 2 and "missing column(s) ts, volume" in done.stderr
    assert stored(settings.psycopg_url) == []


def test_after_an_import_the_live_views_include_the_history(
    settings: Settings, tmp_path: Path, redis_client: Redis
) -> None:
    path = tmp_path / "history.csv"
    good, _ = write_history_csv(path, 2_000, seed=4)

    done = run_cli(settings, str(path), rebuild=True)

    assert done.returncode == 0, done.stderr
    assert "rebuilt the views of 2 symbols" in done.stdout, done.stdout
    keys = Keys.from_settings(settings)
    ticks = stored(settings.psycopg_url)
    for symbol in ("AAA", "BBB"):
        view = View.model_validate_json(redis_client.get(keys.view(symbol)))
        ref = reference.view([t for t in ticks if t.symbol == symbol])
        assert (view.ticks_total, view.last_event_id, view.trades_1m) == (
            ref["ticks_total"], ref["last_event_id"], ref["trades_1m"],
        )  # fmt: skip
    assert len(good) == len(ticks)
