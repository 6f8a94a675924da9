"""`python -m tasks.import FILE`: historical ticks from a CSV or Parquet file into PostgreSQL.

The file is streamed (CSV row by row, Parquet in record batches), cut into chunks of a fixed
number of rows (`--chunk-rows`), and each chunk's valid rows are written with COPY in ONE
transaction together with the chunk's `md_imports` row: all or nothing per chunk. Chunk k is
always the same rows of the same file (its SHA-256 names it), so a re-run skips the chunks
already committed and resumes after a crash; `--force` writes them again and inserts nothing,
because md_ticks is keyed by event_id. Bad rows are reported with their line and field, and
skipped. Then, unless `--no-rebuild`, the imported symbols' live views are rebuilt from
PostgreSQL (`tasks.rebuild`), so they include the history.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg

from backend.core.history_import import (
    ColumnError,
    RowError,
    TsUnit,
    content_key,
    derived_event_id,
    map_columns,
    parse_row,
)
from backend.core.ticks import Tick
from backend.storage.imports_repo import committed_chunks, write_chunk

Format = Literal["csv", "parquet"]
Row = tuple[int, dict[str, Any]]  # (line, field -> cell)
MAX_ERRORS_SHOWN = 20


@dataclass
class ImportReport:
    rows: int = 0
    bad: int = 0
    inserted: int = 0
    already_stored: int = 0
    chunks: int = 0
    chunks_skipped: int = 0
    seconds: float = 0.0
    symbols: set[str] = field(default_factory=set)
    errors: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.rows} rows read, {self.bad} bad, {self.inserted} inserted, "
            f"{self.already_stored} already stored; {self.chunks} chunks "
            f"({self.chunks_skipped} already imported, skipped); {self.seconds:.1f} s, "
            f"{rate:,.0f} rows/s"
        )


def detect_format(path: Path, given: str | None) -> Format:
    if given in ("csv", "parquet"):
        return given  # type: ignore[return-value]
    if path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def digest_and_rows(path: Path, fmt: Format) -> tuple[str, int]:
    """The file's SHA-256 and its number of data rows (the progress bar's total)."""
    sha = hashlib.sha256()
    newlines = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
            newlines += block.count(b"\n")
            last = block[-1:]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return sha.hexdigest(), pq.ParquetFile(path).metadata.num_rows
    lines = newlines + (0 if last == b"\n" else 1)
    return sha.hexdigest(), max(0, lines - 1)


def read_rows(path: Path, fmt: Format, batch: int) -> Iterator[Row]:
    """Every data row as (line, cells by field); raises ColumnError on a header it cannot map."""
    if fmt == "parquet":
        yield from _parquet_rows(path, batch)
        return
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ColumnError("the file is empty (no header)")
        columns = map_columns(header)
        for cells in reader:
            if not cells:
                continue
            yield (
                reader.line_num,
                {name: cells[i] if i < len(cells) else None for name, i in columns.items()},
            )


def _parquet_rows(path: Path, batch: int) -> Iterator[Row]:
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    columns = map_columns(source.schema_arrow.names)
    names = source.schema_arrow.names
    line = 1
    for record_batch in source.iter_batches(batch_size=batch):
        data = record_batch.to_pydict()
        values = {name: data[names[i]] for name, i in columns.items()}
        for j in range(record_batch.num_rows):
            line += 1
            yield line, {name: column[j] for name, column in values.items()}


def chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_file(
    connect: Callable[[], psycopg.Connection[Any]],
    path: Path,
    *,
    fmt: Format,
    chunk_rows: int = 50_000,
    default_source: str = "import",
    ts_unit: TsUnit = "ms",
    force: bool = False,
    dry_run: bool = False,
    stop_after_chunks: int | None = None,
    received_us: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `path`; the report (bad rows, counts, the symbols stored)."""
    started = time.perf_counter()
    received = received_us if received_us is not None else time.time_ns() // 1_000
    digest, _ = digest_and_rows(path, fmt)
    report = ImportReport()
    seen: dict[bytes, int] = {}  # content digest -> rows like it so far (derived ids)
    with connect() as conn:
        done = set() if force else committed_chunks(conn, digest)
        for chunk_no, chunk in enumerate(chunks(read_rows(path, fmt, chunk_rows), chunk_rows)):
            if stop_after_chunks is not None and report.chunks >= stop_after_chunks:
                break
            report.chunks += 1
            report.rows += len(chunk)
            ticks: list[Tick] = []
            bad = 0
            for line, cells in chunk:
                derived = None
                if cells.get("event_id") in (None, ""):
                    key = content_key(cells)
                    derived = derived_event_id(key, seen.get(key, 0))
                    seen[key] = seen.get(key, 0) + 1
                if chunk_no in done:
                    continue
                parsed = parse_row(
                    cells, line=line, default_source=default_source, derived_id=derived,
                    ts_unit=ts_unit, received_us=received,
                )  # fmt: skip
                if isinstance(parsed, Tick):
                    ticks.append(parsed)
                else:
                    bad += 1
                    report.errors += parsed
            if chunk_no in done:
                report.chunks_skipped += 1
            elif not dry_run:
                inserted = write_chunk(
                    conn, file_sha256=digest, file_name=path.name, chunk_no=chunk_no,
                    ticks=ticks, rows=len(chunk), bad_rows=bad,
                )  # fmt: skip
                report.inserted += inserted
                report.already_stored += len(ticks) - inserted
            report.bad += bad
            report.symbols |= {t.symbol for t in ticks}
            if progress is not None:
                progress(len(chunk))
    report.seconds = time.perf_counter() - started
    return report


def write_errors(path: Path, errors: list[RowError]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["line", "field", "reason"])
        writer.writerows((e.line, e.field, e.reason) for e in errors)


def _rebuild(symbols: set[str]) -> None:
    """The imported symbols' live state rebuilt from PostgreSQL (views then include history)."""
    from redis import RedisError

    from backend.settings import get_worker_settings
    from tasks.rebuild import rebuild_symbols

    try:
        report = rebuild_symbols(get_worker_settings(), sorted(symbols))
    except (RedisError, psycopg.Error) as exc:
        print(
            f"views not rebuilt ({type(exc).__name__}: {exc}); run `python -m tasks.rebuild "
            f"--symbols {','.join(sorted(symbols))}` once Redis is up",
            file=sys.stderr,
        )
        return
    print(f"rebuilt the views of {len(report.symbols)} symbols", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.import",
        description="Import historical ticks (CSV or Parquet) into md_ticks and the candles.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--format", choices=["csv", "parquet"], help="default: by extension")
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="rows per transaction")
    parser.add_argument("--source", default="import", help="source of rows that name none")
    parser.add_argument(
        "--ts-unit", choices=["s", "ms", "us", "ns"], default="ms",
        help="unit of integer epoch timestamps (default ms, like live ingest)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="re-write chunks already imported")
    parser.add_argument("--dry-run", action="store_true", help="validate and report only")
    parser.add_argument("--no-rebuild", action="store_true", help="leave the live views alone")
    parser.add_argument("--errors-out", type=Path, help="write every bad row here (CSV)")
    parser.add_argument("--stop-after-chunks", type=int, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"{args.file}: no such file")
    if args.chunk_rows < 1:
        parser.error("--chunk-rows: must be >= 1")

    from rich.progress import Progress

    from backend.settings import get_worker_settings

    settings = get_worker_settings()
    fmt = detect_format(args.file, args.format)
    total = digest_and_rows(args.file, fmt)[1]

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(settings.psycopg_url, connect_timeout=5)

    try:
        with Progress(transient=False) as bar:
            task = bar.add_task(f"importing {args.file.name}", total=total)
            report = import_file(
                connect, args.file, fmt=fmt, chunk_rows=args.chunk_rows,
                default_source=args.source, ts_unit=args.ts_unit, force=args.force,
                dry_run=args.dry_run, stop_after_chunks=args.stop_after_chunks,
                progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
    except ColumnError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        print(
            f"cannot reach PostgreSQL ({exc}); start `make run` (embedded servers) or set PG_URL",
            file=sys.stderr,
        )
        return 3
    for error in report.errors[:MAX_ERRORS_SHOWN]:
        print(f"line {error.line}: {error.field}: {error.reason}", file=sys.stderr)
    if len(report.errors) > MAX_ERRORS_SHOWN:
        more = len(report.errors) - MAX_ERRORS_SHOWN
        print(f"… and {more} more (--errors-out FILE lists them all)", file=sys.stderr)
    if args.errors_out is not None:
        write_errors(args.errors_out, report.errors)
    print(report.summary(), flush=True)
    if report.inserted and not args.no_rebuild and not args.dry_run:
        _rebuild(report.symbols)
    return 0
