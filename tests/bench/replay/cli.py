"""Replay benchmark: how fast a replay at `max` goes, whether the `history` service's memory
stays flat over millions of ticks, and what a replay costs live ingest.

    python -m tests.bench.replay [--ticks 10000000] [--phase-s 30] [--rounds 3] [--fresh]
                                 [--profile DIR] [--json artifacts/bench/replay.json]

1. Seed: `--ticks` stored ticks (10 symbols, Poisson arrivals over one day) binary-COPYed
   straight into md_ticks of database `--database` on PG_URL's server (embedded when unset),
   which is kept: a later run asking for the same ticks reuses it (`--fresh` reseeds, `--drop`
   drops it at the end). The candle rollups are not built: replays do not read them.
2. The system as the Procfile runs it, product settings (tests.support.processes
   .product_settings), Redis from REDIS_URL (a namespace of this run's own): API, gateway, live
   workers (--processes 2 --threads 4) and `history` (--processes 1 --threads N, REPLAY_NICE).
3. One replay at `max` over every stored tick, sampled every second: ticks_applied (GET
   /replays/{id}), RSS of the history tree (Dramatiq parent + worker child), CPU of history,
   redis-server and PostgreSQL (see `sampler` for what each counts). Printed: RSS against ticks
   replayed at every 10 %, the median per-second rate and the overall one, the Redis memory the
   replay's namespace holds at the end.
4. Live latency: the pipeline benchmark's feeder (single ticks at 1,000/s, its ack and
   ingest→view latencies) for `--phase-s` without a replay, then as long with a replay at `max`
   started just before (cancelled after the phase), `--rounds` times; medians and ratios.

Measures, never asserts on time. Exit 1 when the replay failed or a live tick was not stored
exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis import Redis

from backend.settings import Settings
from tests.bench.machine import machine
from tests.bench.replay import report
from tests.bench.replay.options import DEFAULT_JSON, Options
from tests.bench.replay.run import latency_rounds, replay_at_max, start_system, summarize_latency
from tests.bench.replay.seed import drop_database, remove_live_ticks, seed
from tests.bench.text import say
from tests.support.processes import product_settings, running, settings_env
from tests.support.servers import start_servers


def parse_args(argv: Sequence[str] | None) -> Options:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m tests.bench.replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--ticks", type=int, default=d.ticks, help="stored ticks to replay (10M)")
    p.add_argument("--symbols", type=int, default=d.symbols, choices=range(1, 11))
    p.add_argument("--database", default=d.database, help="kept between runs")
    p.add_argument("--fresh", action="store_true", help="reseed even when the seed matches")
    p.add_argument("--drop", action="store_true", help="drop the database at the end")
    p.add_argument("--history-threads", type=int, default=d.history_threads)
    p.add_argument("--sample-s", type=float, default=d.sample_s)
    p.add_argument("--replay-timeout-s", type=float, default=d.replay_timeout_s)
    p.add_argument("--phase-s", type=float, default=d.phase_s, help="s of live ingest per phase")
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--live-tps", type=float, default=d.live_tps)
    p.add_argument("--live-mode", choices=("batch", "single"), default=d.live_mode)
    p.add_argument("--batch-linger-ms", type=float, default=d.batch_linger_ms)
    p.add_argument("--skip-max", action="store_true", help="only the latency rounds")
    p.add_argument("--skip-latency", action="store_true", help="only the replay at max")
    p.add_argument("--profile", type=Path, default=None, help="py-spy the history worker here")
    p.add_argument("--profile-s", type=float, default=d.profile_s)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, dest="json_path")
    a = vars(p.parse_args(argv))
    if a["ticks"] < 1_000:
        p.error("--ticks must be at least 1000")
    return Options(**a)


def run(opts: Options, base: Settings | None = None) -> dict[str, Any]:
    base = base or Settings()
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-replay-")))
        servers = start_servers(base, stack, tmp)
        if servers.embedded:
            say("PG_URL unset: embedded servers in a temp dir (the seed is not kept)")
        seeded = seed(servers.admin_url, opts.database, opts.ticks, opts.symbols, opts.fresh)
        if opts.drop:
            stack.callback(drop_database, servers.admin_url, opts.database)
        stack.callback(remove_live_ticks, seeded.url, seeded.symbols)
        settings = product_settings(servers.redis_url, seeded.url)
        stack.callback(_delete_namespace, servers.redis_url, settings.redis_namespace)
        log_dir = opts.json_path.parent / (opts.json_path.stem + "-logs")
        procs = stack.enter_context(running(settings_env(settings) | {"LOG_LEVEL": "WARNING"},
                                            log_dir))  # fmt: skip
        start_system(procs, settings, opts)
        say(f"system up (namespace {settings.redis_namespace}, logs in {log_dir})")
        out = {
            "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()}
            | {"replay_nice": settings.replay_nice, "replay_slice_s": settings.replay_slice_s},
            "machine": machine() | {"pg_embedded": servers.embedded},
            "seed": {"ticks": seeded.ticks, "symbols": seeded.symbols, "seconds": seeded.seconds},
        }
        if not opts.skip_max:
            say(f"replay at max over {seeded.ticks:,} ticks")
            out["max"] = replay_at_max(procs, settings, seeded, servers.admin_url, opts)
            _write(opts, out)  # kept if the latency rounds are interrupted
            print("\n".join(["", *report.render_max(out["max"]), ""]), flush=True)
        if not opts.skip_latency:
            out["rounds"] = latency_rounds(procs, seeded, opts, tmp)
            out["latency"] = summarize_latency(out["rounds"])
    _write(opts, out)
    return out


def _write(opts: Options, out: dict[str, Any]) -> None:
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(out, indent=1, default=str))


def _delete_namespace(redis_url: str, namespace: str) -> None:
    with Redis.from_url(redis_url) as client:
        names = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for start in range(0, len(names), 500):
            client.delete(*names[start : start + 500])


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: the processes stop, the namespace is deleted


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    opts = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    out = run(opts, settings)
    print()
    print(report.render(out))
    print(f"\nJSON: {opts.json_path}")
    failed = out.get("max", {}).get("state") not in (None, "done")
    lost = "latency" in out and not out["latency"]["ok"]
    return 1 if failed or lost else 0
