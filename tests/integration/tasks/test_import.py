"""`python -m tasks.import` against a real PostgreSQL: bad rows reported by line, the rest stored
once with exact candles, re-imports insert nothing, Parquet = CSV, and a stopped import resumes."""

from __future__ import annotations

import csv
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from redis import Redis

from backend.bus.keys import Keys
from backend.core.history_import import PLACEHOLDER_ID, DerivedIds
from backend.core.ticks import Tick, datetime_to_us
from backend.core.view import View
from backend.settings import Settings
from tasks.history_import import import_file
from tests import reference
from tests.support.history import write_history_csv
from tests.support.processes import settings_env
from tests.support.waiting import wait_for


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


def expected_ticks(good: list[list[str]]) -> dict[str, tuple[Any, ...]]:
    """The good rows as the import must store them: event_id -> content (ids derived in file
    order, so the test pins the derivation, not just the count)."""
    ids = DerivedIds()
    out = {}
    for row in good:
        t = ids.assign(Tick(PLACEHOLDER_ID, *content(row), received_us=0))
        out[t.event_id] = tuple(t.content())
    return out


def stored_by_id(pg_url: str) -> dict[str, tuple[Any, ...]]:
    return {t.event_id: tuple(t.content()) for t in stored(pg_url)}


def expected_candles(good: list[list[str]]) -> dict[tuple[str, int], tuple[Any, ...]]:
    """md_candles_1m computed by the reference from the good rows alone."""
    ids = DerivedIds()
    ticks = [ids.assign(Tick(PLACEHOLDER_ID, *content(r), received_us=0)) for r in good]
    out = {}
    for symbol in {t.symbol for t in ticks}:
        mine = [t for t in ticks if t.symbol == symbol]
        for bucket, c in reference.candles(mine, 60_000_000).items():
            # PostgreSQL sums each float's shortest decimal exactly (ticks_repo): so do we.
            volume = sum(
                (Decimal(repr(t.volume)) for t in mine if t.ts_us // 60_000_000 * 60_000_000
                 == bucket), Decimal(0),
            )  # fmt: skip
            out[(symbol, bucket)] = (
                c["open"],
                c["high"],
                c["low"],
                c["close"],
                c["trades"],
                volume,
            )
    return out


def comparable(candles: dict[tuple[str, int], tuple[Any, ...]]) -> dict[Any, tuple[Any, ...]]:
    return {k: v[:6] for k, v in candles.items()}


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
    assert sorted(int(r["line"]) for r in reported) == sorted(bad_lines)  # one error per bad row
    assert {r["field"] for r in reported} == {"price", "symbol", "ts", "volume", "seq"}
    assert stored_by_id(settings.psycopg_url) == expected_ticks(good)
    assert len(stored(settings.psycopg_url)) == len(good)  # the doubled trade: two ticks
    assert f"{len(good)} inserted" in done.stdout
    candles = stored_candles(settings.psycopg_url)
    assert comparable(candles) == expected_candles(good)

    again = import_file(  # in-process: one subprocess run above is enough
        lambda: psycopg.connect(settings.psycopg_url), path, fmt="csv", chunk_rows=4_000,
        force=True,
    )  # fmt: skip
    assert (again.inserted, again.already_stored, again.bad) == (0, len(good), len(bad_lines))
    assert stored_candles(settings.psycopg_url) == candles
    assert len(stored(settings.psycopg_url)) == len(good)


def test_a_parquet_file_of_the_same_rows_gives_the_same_ticks(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    good, bad_lines = write_history_csv(path, 3_000, seed=2)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    # The file as it is (text columns, bad cells included): bad rows by row index.
    as_text = tmp_path / "as-text.parquet"
    pq.write_table(pa.table({n: [r[i] for r in rows[1:]] for i, n in enumerate(rows[0])}), as_text)
    # Typed columns (timestamp, float64, int64) of the good rows: the same content, spelled
    # differently, derives the same event ids.
    typed = tmp_path / "typed.parquet"
    ms = [int(r[1]) for r in good]
    pq.write_table(
        pa.table({
            "symbol": [r[0] for r in good],
            "time": pa.array(ms, pa.int64()).cast(pa.timestamp("ms", "UTC")),
            "price": pa.array([float(r[2]) for r in good], pa.float64()),
            "size": pa.array([float(r[3]) for r in good], pa.float64()),
            "venue": [r[4] for r in good],
            "seq": pa.array([int(r[5]) for r in good], pa.int64()),
        }),
        typed, row_group_size=500,
    )  # fmt: skip

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(settings.psycopg_url)

    from_text = import_file(connect, as_text, fmt="parquet", chunk_rows=1_000)
    assert from_text.inserted == len(good)
    assert sorted(e.line for e in from_text.errors) == sorted(line - 2 for line in bad_lines)
    assert stored_by_id(settings.psycopg_url) == expected_ticks(good)
    candles = stored_candles(settings.psycopg_url)
    assert comparable(candles) == expected_candles(good)
    from_typed = import_file(connect, typed, fmt="parquet", chunk_rows=700)
    assert (from_typed.bad, from_typed.inserted) == (0, 0)
    assert from_typed.already_stored == len(good)
    from_csv = import_file(connect, path, fmt="csv", chunk_rows=1_000)
    assert (from_csv.inserted, from_csv.already_stored) == (0, len(good))
    assert len(stored(settings.psycopg_url)) == len(good)
    assert stored_candles(settings.psycopg_url) == candles


def test_a_killed_import_keeps_its_committed_chunks_and_a_rerun_completes(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    good, _ = write_history_csv(path, 6_000, seed=5)  # 6,001 rows: 31 chunks of 200
    cli = [sys.executable, "-m", "tasks.import", str(path), "--chunk-rows", "200", "--no-rebuild"]
    proc = subprocess.Popen(
        cli, env=settings_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def committed() -> list[tuple[int, int]]:
        with psycopg.connect(settings.psycopg_url) as conn:
            return conn.execute("SELECT chunk_no, inserted FROM md_imports ORDER BY 1").fetchall()

    try:
        wait_for(lambda: len(committed()) >= 2, timeout=60, interval=0.02, what="2 chunks")
    finally:
        proc.kill()  # SIGKILL: no cleanup, no final commit
        proc.wait(timeout=30)
    chunks = committed()
    assert 2 <= len(chunks) < 31, "the import must have been killed mid-way"
    assert [c for c, _ in chunks] == list(range(len(chunks)))
    # Exactly the committed chunks' ticks are stored: each chunk committed on its own.
    assert len(stored(settings.psycopg_url)) == sum(inserted for _, inserted in chunks)

    says: list[str] = []
    rest = import_file(
        lambda: psycopg.connect(settings.psycopg_url), path, fmt="csv", chunk_rows=200,
        say=says.append,
    )  # fmt: skip
    assert (rest.chunks, rest.chunks_skipped) == (31, len(chunks))
    assert says and f"{len(chunks)} chunk(s) of this file already imported" in says[0]
    assert rest.inserted == len(good) - sum(inserted for _, inserted in chunks)
    assert stored_by_id(settings.psycopg_url) == expected_ticks(good)
    assert comparable(stored_candles(settings.psycopg_url)) == expected_candles(good)


def test_a_resume_with_another_chunk_size_skips_nothing_it_has_not_stored(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    good, _ = write_history_csv(path, 3_000, seed=4)

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(settings.psycopg_url)

    import_file(connect, path, fmt="csv", chunk_rows=500, stop_after_chunks=2)
    rest = import_file(connect, path, fmt="csv", chunk_rows=2_000)  # chunk 0 = rows 0..1999
    assert rest.chunks_skipped == 0
    assert stored_by_id(settings.psycopg_url) == expected_ticks(good)
    assert comparable(stored_candles(settings.psycopg_url)) == expected_candles(good)


def test_after_import_gets_the_symbols_of_the_file_also_when_resumed(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    path.write_text("ticker,timestamp,price,qty\nAAA,2001-01-01T00:00:00Z,1,1\nBBB,1000,2,2\n")
    calls: list[set[str]] = []

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(settings.psycopg_url)

    import_file(
        connect, path, fmt="csv", chunk_rows=1, stop_after_chunks=1, after_import=calls.append
    )
    assert calls == []  # stopped: as if it had died
    report = import_file(connect, path, fmt="csv", chunk_rows=1, after_import=calls.append)
    assert (report.inserted, report.chunks_skipped) == (1, 1)
    assert calls == [{"AAA", "BBB"}]  # AAA's chunk was stored by the run that died


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
