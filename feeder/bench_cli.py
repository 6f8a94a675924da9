"""Command line of the load generator: `python -m feeder bench --tps N --duration S ...`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from backend.settings import FeederBenchSettings
from feeder.bench import Bench, BenchConfig, format_table


def parse(argv: list[str], settings: FeederBenchSettings) -> tuple[BenchConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m feeder bench", description="Load-test a running Tickstream."
    )
    p.add_argument("--target", default=settings.target_url, help="API base URL (TARGET_URL)")
    p.add_argument("--tps", type=float, required=True, help="offered ticks per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    p.add_argument("--symbols", type=int, default=5, help="number of symbols (1-8)")
    p.add_argument("--mode", choices=["single", "batch"], default="single")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument(
        "--batch-linger-ms",
        type=float,
        default=5.0,
        help="batch mode: the longest a tick waits for its batch to fill (counts as latency)",
    )
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = p.parse_args(argv)
    if not 1 <= args.symbols <= 8:
        p.error("--symbols must be between 1 and 8")
    if args.tps <= 0 or args.duration <= 0:
        p.error("--tps and --duration must be > 0")
    cfg = BenchConfig(
        target=args.target.rstrip("/"), tps=args.tps, duration=args.duration, symbols=args.symbols,
        mode=args.mode, batch_size=args.batch_size, batch_linger_s=args.batch_linger_ms / 1000,
        connections=args.connections, seed=args.seed,
    )  # fmt: skip
    return cfg, args


def main(argv: list[str], settings: FeederBenchSettings) -> int:
    cfg, args = parse(argv, settings)
    bench = Bench(cfg, settings)
    total = int(cfg.tps * cfg.duration)
    if args.json:
        result = asyncio.run(bench.run())
    else:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[acked]:,} acked"),
            TimeRemainingColumn(),
        ) as progress:  # fmt: skip
            task = progress.add_task(f"{cfg.mode} @ {cfg.tps:,.0f} tps", total=total, acked=0)

            def update(offered: int, acked: int) -> None:
                progress.update(task, completed=offered, acked=acked)

            result = asyncio.run(bench.run(update))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0 if result["verification"]["exactly_once"] else 1
