"""Gateway benchmark: N SSE clients on one gateway process at R events/s; latency, CPU, RSS.

    python -m tests.bench.gateway [--clients 1000] [--rate 2000] [--seconds 25] [--runs 3]
                                  [--per-client 2] [--stalled-share 0.1] [--no-baseline]
                                  [--json artifacts/bench/gateway.json]

Answers issue #15 part 6: "1,000 concurrent SSE clients on one gateway process at 2,000 events/s
published -> delivery p50/p99 from publish to client, CPU per 1,000 deliveries, RSS; the same with
10 % of clients stalled -> the healthy clients' latency is unchanged and the gateway's memory
stays bounded".

Redis: REDIS_URL when set (a private namespace and ring per run), else an embedded one. Per run
and scenario: one fresh server process (`python -m backend.gateway`, or the baseline: the old
in-API broadcaster, tests/bench/gateway/baseline_app.py), its clients in `--client-procs`
processes of their own (raw asyncio sockets: tests/bench/gateway/sse_client.py), a publisher
thread appending realistic events (`symbol.updated` with whole views, and `tick.received`) to
the ring with `Ring.queue_append`, one pipeline every `--batch-ms`. Latency = the client's
receive time - the ms of the event's ring id (the Redis server's clock at the append; one
machine, one clock). CPU = the server's utime+stime over the window, per 1,000 events the
healthy clients received. Measures, does not assert on time; exit code 1 when a client was
refused or a healthy client received nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from backend.settings import Settings
from tests.bench.gateway.options import DEFAULT_JSON, Options
from tests.bench.gateway.render import render
from tests.bench.gateway.run import run


def parse_args(argv: Sequence[str] | None) -> Options:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m tests.bench.gateway", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--clients", type=int, default=d.clients)
    p.add_argument("--rate", type=float, default=d.rate, help="events/s published")
    p.add_argument("--seconds", type=float, default=d.seconds, help="measured window per run")
    p.add_argument("--warmup", type=float, default=d.warmup)
    p.add_argument("--symbols", type=int, default=d.symbols)
    p.add_argument("--per-client", type=int, default=d.per_client, help="symbols per client")
    p.add_argument("--all-share", type=float, default=d.all_share,
                   help="share of clients following every symbol")  # fmt: skip
    p.add_argument("--stalled-share", type=float, default=d.stalled_share)
    p.add_argument(
        "--stalled-follow", choices=("all", "same"), default=d.stalled_follow,
        help="stalled clients follow every symbol (their socket buffers fill within seconds) "
        "or as many as a healthy client (minutes)",
    )  # fmt: skip
    p.add_argument("--tick-share", type=float, default=d.tick_share)
    p.add_argument("--batch-ms", type=float, default=d.batch_ms)
    p.add_argument("--client-procs", type=int, default=d.client_procs)
    p.add_argument("--runs", type=int, default=d.runs)
    p.add_argument("--no-baseline", dest="baseline", action="store_false")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, dest="json_path")
    return Options(**vars(p.parse_args(argv)))  # every option is a field of the same name


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    opts = parse_args(argv)
    report = run(opts, settings)
    print()
    print(render(report))
    print(f"\nJSON: {opts.json_path}")
    bad = [r for r in report["rows"] if r["refused"] or r["healthy_without_events"]]
    return 1 if bad else 0
