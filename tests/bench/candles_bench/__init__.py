"""Candles benchmark: the rollup-backed `GET /symbols/{symbol}/candles` vs naive aggregation.

    python -m tests.bench.candles_bench [--ticks 10000000] [--symbols 5] [--runs 200] [--json PATH]

Layout: `queries` (the SQL under test), `ticks` and `copy_format` (synthetic ticks, loaded by
binary COPY), `loading` (the load and the rollups), `database` (server facts and sizes),
`measure`, `compare` and `explain` (timings, the correctness check, plans), `report` (the
printed tables) and `cli` (the command line and the run).
"""

from tests.bench.candles_bench.cli import main

__all__ = ["main"]
