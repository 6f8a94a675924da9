"""Overload benchmark: N x the sustainable ingest rate for S seconds; memory, backlog, loss, drain.

    python -m tests.bench.overload [--seconds 60] [--multiple 10] ... (see `cli`)

Layout: `options` and `cli` (the command line), `run` (the whole run), `senders` and `ledger`
(the load and what came of it), `sustainable` (the rate it is a multiple of), `sampler` and
`backlog` (what is watched every second), `convergence` (drained, and exactly once?),
`summary` and `render` (the report).
"""

from tests.bench.overload.backlog import backlog_bound, max_handoff_ticks
from tests.bench.overload.cli import main

__all__ = ["backlog_bound", "main", "max_handoff_ticks"]
