"""Overload benchmark: N x the sustainable ingest rate for S seconds; memory, backlog, loss, drain.

    python -m tests.bench.overload [--seconds 60] [--multiple 10] [--sustainable TPS]
                                   [--max-backlog TICKS] [--batch 500] [--senders 16]
                                   [--stall-worker S] [--json artifacts/bench/overload.json]

Answers the backpressure issue: "under 10x the sustainable rate for 60 s every process's RSS stays
bounded, nothing acknowledged is lost, and the system drains and converges afterwards".

It starts private embedded Redis and PostgreSQL in a temp dir on free ports, the real API (one
uvicorn process) and one Dramatiq worker (`--processes 2 --threads 2`), then:

1. sustainable rate: given, or measured: senders offer batches as fast as they can for
   `--measure-seconds`, and the rate is the slower of the calc and Postgres drain rates (stats
   counters `calc_ticks`, `rows_written`) over the last two thirds of that time; the backlog
   this builds is drained before the overload starts;
2. overload: `--senders` concurrent senders offer `multiple x sustainable` ticks/s in batch POSTs
   to /ingest/ticks (unique event_ids, a few symbols, ts = now). On 429 a sender sleeps
   Retry-After and re-sends the same batch (same event_ids), as the feeder does. Each sender
   waits for its answer (a closed loop, like a feeder), so a slow API also holds them back:
   the table shows the offered rate actually reached next to the target.
   `--stall-worker S` SIGSTOPs the worker for the first S s, so nothing drains and the
   high-water mark is certainly reached (the smoke test uses it);
3. every second: RSS (and CPU time) of every process (API, Dramatiq parent and children,
   redis-server, PostgreSQL postmaster + backends summed, this process) and the backlog in
   ticks as GET /stats reports it (`gauges.backlog_ticks`: ticks waiting for calc + ticks
   waiting for Postgres, what MAX_BACKLOG is checked against; each accepted tick counts 2), the
   same arithmetic on the bench's own read of the stats hash, and, as secondary information, the
   hand-offs waiting (calc queue messages, outbox entries; one group commit of 1..2000 ticks
   each);
4. drain: waits until every acknowledged event_id is in md_ticks exactly once and every symbol's
   view counts exactly the acknowledged ticks (`ticks_total`), and reports how long that took.

Measures, does not assert on time. Exit code 1 when anything acknowledged is missing, anything
is stored twice, or the views do not match what was acknowledged; else 0.

How far the backlog can pass MAX_BACKLOG: the ingest script refuses a hand-off when the backlog
is already >= MAX_BACKLOG, atomically, before writing; an accepted hand-off of G new ticks adds
2G (calc + Postgres); nothing else adds to it. So backlog <= MAX_BACKLOG - 1 + 2 G_max. The
group commit (backend/bus/group_commit.py `_take`) puts whole requests into one hand-off while
they fit in INGEST_MAX_BATCH (M), but always at least one request, so with requests of B ticks
G_max = B x max(1, floor(M / B)); and with S closed-loop senders (at most one request each
waiting in the one API process) also G_max <= S x B: G_max = B x min(S, max(1, floor(M / B))).
See `max_handoff_ticks` and `backlog_bound`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from backend.settings import Settings
from tests.bench.overload.options import DEFAULT_JSON, Options
from tests.bench.overload.render import render
from tests.bench.overload.run import run


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m tests.bench.overload", description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="overload duration")
    p.add_argument("--multiple", type=float, default=10.0, help="x the sustainable rate")
    p.add_argument("--sustainable", type=float, default=None, help="ticks/s; default: measure")
    p.add_argument("--measure-seconds", type=float, default=15.0)
    p.add_argument(
        "--max-backlog",
        type=int,
        default=None,
        help="MAX_BACKLOG: ticks waiting (for calc + for Postgres, each accepted tick counts 2) "
        f"at which ingest answers 429; default: the product's ({Settings().max_backlog:,})",
    )
    p.add_argument("--batch", type=int, default=500, help="ticks per POST")
    p.add_argument("--senders", type=int, default=16, help="concurrent senders")
    p.add_argument("--drain-timeout", type=float, default=900.0)
    p.add_argument("--stall-timeout", type=float, default=60.0)
    p.add_argument(
        "--stall-worker",
        type=float,
        default=0.0,
        help="SIGSTOP the worker for the first S s of the overload (nothing drains: the "
        "high-water mark is certainly reached); keep it under HEARTBEAT_TIMEOUT_MS",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, dest="json_path")
    return Options(**vars(p.parse_args(argv)))  # every option is a field of the same name


def main(argv: Sequence[str] | None = None) -> int:
    """Run it, print the table; 1 when anything acknowledged was lost, doubled or miscounted."""
    opts = parse_args(argv)
    report = run(opts)
    print()
    print(render(report))
    print(f"\nJSON: {opts.json_path}")
    return 0 if report["correctness"]["ok"] else 1
