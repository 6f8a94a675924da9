"""`python -m tests.bench.import_bench [--rows N]`: `python -m tasks.import` on a generated CSV.

A file of N rows (default 1,000,000) with 1 % bad rows of eight kinds, into a throw-away
database: validation alone (`--dry-run`: the per-row cost), the import (validation, COPY, the
candle rollups, one transaction per 50,000-row chunk), the same file with `--force` (every row
already stored: inserts 0), and again without it (every chunk skipped by its `md_imports` row).
Prints rows/s of each and what the import reported. No timed asserts anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from backend.settings import Settings
from tasks.history_import import ImportReport, import_file
from tests.bench.text import fmt_int, say
from tests.support.history import write_history_csv
from tests.support.servers import open_servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.import_bench")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-import-")))
        servers = open_servers(Settings(), stack, tmp, prefix="tickstream_bench_import")
        path = tmp / "history.csv"
        started = time.perf_counter()
        good, bad_lines = write_history_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        say(f"generated {fmt_int(args.rows)} rows ({size_mb:.0f} MB), "
            f"{len(bad_lines)} bad, in {time.perf_counter() - started:.1f} s")  # fmt: skip

        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(servers.pg_url)

        runs: list[tuple[str, ImportReport]] = []
        for name, options in (
            ("validate only (--dry-run)", {"dry_run": True}),
            ("import", {}),
            ("same file, --force", {"force": True}),
            ("same file again", {}),
        ):
            report = import_file(connect, path, fmt="csv", chunk_rows=args.chunk_rows, **options)
            runs.append((name, report))
            say(f"{name}: {report.summary()}")
        imported = runs[1][1]
        reported = {e.line for e in imported.errors}
        print()
        print(f"{'run':<28}{'rows/s':>12}{'inserted':>12}{'bad':>8}{'skipped chunks':>16}")
        for name, r in runs:
            rate = r.rows / r.seconds if r.seconds else 0
            print(f"{name:<28}{fmt_int(rate):>12}{fmt_int(r.inserted):>12}{fmt_int(r.bad):>8}"
                  f"{fmt_int(r.chunks_skipped):>16}")  # fmt: skip
        print()
        print(f"bad rows generated {len(bad_lines)}, reported by line {len(reported)}, "
              f"reported = generated: {reported == bad_lines}")  # fmt: skip
        print(f"good rows {len(good)}, inserted {imported.inserted}, "
              f"stored once: {imported.inserted == len(good)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
