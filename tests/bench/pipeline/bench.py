"""Runs of `python -m feeder bench` and `wrk` against our system and the baseline; the CLI.

Per run, system and mode (single: one tick per POST /ingest/tick at a fixed offered rate; wrk:
one tick per POST /ingest/tick from Debian's wrk, unpaced, see `wrk`; batch: POST /ingest/ticks):
md_ticks is truncated, the load generator runs as a subprocess (its CPU is not counted), and
around it this process measures the system's CPU (every process of it, see `procs`), its
peak RSS per process (every 0.5 s) and how fast its views take the ticks in (GET /stream).
Throughputs, all three from the first send (one clock: CLOCK_MONOTONIC, see `feeder_clock`;
wrk's script reads the same clock) to when the last tick got through that stage:
- accepted/s: accepted ticks / (last ack - first send), the feeder's `achieved_tps`;
- in views/s: accepted ticks / (the views had taken them all in - first send), from GET /stream
  `symbol.updated` events' `view.ticks_total` (summed over symbols, since the run started);
- in Postgres/s: stored rows / (last ack + drain - first send), drain being how long after the
  last ack the feeder's verification found every accepted tick in md_ticks (polled, 0.2 s).
Runs alternate between the systems (noise hits both), mode by mode (batch last); figures are
medians over the runs.
Exit 1 when the exactly-once verification failed in any run.

The defaults are issue 17's: single at 1,000 ticks/s for 10 s, wrk -t1 -c32 for 15 s, batch at
50,000 ticks/s for 60 s (the baseline at 10,000 for 10 s: it stores ~2,000/s); the last table
(`targets`) sets each target beside ours, the baseline and the ratio. Redis CPU per tick is
Redis's main-thread CPU (INFO cpu) per accepted tick; commandstats is the breakdown.

Our system runs as `make run` does (Procfile defaults): one API process, Dramatiq
`--processes 2 --threads 4`. On 2 cores shared with the feeder that measured best: a second
uvicorn process lowered batch throughput and view latency got worse, one worker process left
the views behind (single runs of 10 s at 10,000 ticks/s; noisy, so only the direction counts).

In batch mode the feeder sends a batch when it holds `--batch-size` ticks or its oldest tick has
waited `--batch-linger-ms` (50 ms: at 10,000 ticks/s a batch of 500 fills in 50 ms); the wait counts
as latency, since ticks are timed from when they were due ("ticks per request" shows the result).

`--profile DIR` runs py-spy (raw collapsed stacks, GIL holders only) on our API and worker
children during the first run of `--profile-mode`; top functions go into the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from tests.bench import text
from tests.bench.machine import machine
from tests.bench.pipeline import report, targets
from tests.bench.pipeline.counters import (
    LATENCY_THRESHOLD_MS,
    api_ack_buckets,
    bucket_quantiles,
    redis_command_usec,
    redis_cost,
    redis_main_thread_cpu,
    redis_stalls,
    wait_settled,
)
from tests.bench.pipeline.options import DEFAULT_JSON, MODES, SYSTEMS, Options
from tests.bench.pipeline.procs import RssSampler, groups_cpu
from tests.bench.pipeline.profiler import Profiler
from tests.bench.pipeline.systems import (
    BASELINE_APP,
    System,
    ViewWatcher,
    in_views,
    start_baseline,
    start_ours,
    wait_views,
)
from tests.bench.pipeline.wrk import INSTALL_HINT, run_wrk, wrk_path
from tests.support.processes import ROOT, product_settings, settings_env
from tests.support.servers import PrivateServers

DEDUP_IDS = 200_000  # event_ids remembered for the bytes-per-event_id row


def say(message: str) -> None:
    text.say(message, width=6)


# `make bench`'s defaults where they differ from Options' (which other benchmarks reuse).
CLI_DEFAULTS = {
    "batch_tps": 50_000.0,
    "batch_duration": 60.0,
    "baseline_batch_tps": 10_000.0,
    "baseline_batch_duration": 10.0,
}


def parse_args(argv: Sequence[str] | None) -> Options:
    d = Options(**CLI_DEFAULTS)  # type: ignore[arg-type]
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=d.runs)
    p.add_argument("--duration", type=float, default=d.duration, help="s of sending, single")
    p.add_argument("--single-tps", type=float, default=d.single_tps)
    p.add_argument("--batch-tps", type=float, default=d.batch_tps, help="offered to ours")
    p.add_argument("--batch-duration", type=float, default=d.batch_duration, help="ours, s")
    p.add_argument("--baseline-batch-tps", type=float, default=d.baseline_batch_tps)
    p.add_argument("--baseline-batch-duration", type=float, default=d.baseline_batch_duration)
    p.add_argument("--wrk-duration", type=float, default=d.wrk_duration, help="s per wrk run")
    p.add_argument("--wrk-threads", type=int, default=d.wrk_threads)
    p.add_argument("--wrk-connections", type=int, default=d.wrk_connections)
    p.add_argument(
        "--dedup-ids",
        type=int,
        default=DEDUP_IDS,
        help="event_ids for the Redis bytes-per-event_id row (0: skip)",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--batch-linger-ms", type=float, default=d.batch_linger_ms)
    p.add_argument("--connections", type=int, default=d.connections)
    p.add_argument("--api-procs", type=int, default=d.api_procs, help="uvicorn processes (ours)")
    p.add_argument("--worker-processes", type=int, default=d.worker_processes)
    p.add_argument("--worker-threads", type=int, default=d.worker_threads)
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--baseline-wait", type=float, default=d.baseline_wait)
    p.add_argument("--profile", type=Path, default=None, help="dir for py-spy profiles")
    p.add_argument("--profile-seconds", type=float, default=d.profile_seconds)
    p.add_argument("--profile-mode", choices=MODES, default=d.profile_mode)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, dest="json_path")
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    return Options(
        runs=a.runs,
        duration=a.duration,
        single_tps=a.single_tps,
        batch_tps=a.batch_tps,
        batch_duration=a.batch_duration,
        baseline_batch_tps=a.baseline_batch_tps,
        baseline_batch_duration=a.baseline_batch_duration,
        wrk_duration=a.wrk_duration,
        wrk_threads=a.wrk_threads,
        wrk_connections=a.wrk_connections,
        batch_size=a.batch_size,
        batch_linger_ms=a.batch_linger_ms,
        connections=a.connections,
        api_procs=a.api_procs,
        worker_processes=a.worker_processes,
        worker_threads=a.worker_threads,
        systems=tuple(s for s in a.systems.split(",") if s),
        modes=tuple(m for m in a.modes.split(",") if m),
        baseline_wait=a.baseline_wait,
        profile=a.profile,
        profile_seconds=a.profile_seconds,
        profile_mode=a.profile_mode,
        json_path=a.json_path,
        plot=not a.no_plot,
        extra={"dedup_ids": a.dedup_ids},
    )


def run_feeder(
    system: System, mode: str, opts: Options, seed: int, out: Path
) -> tuple[dict[str, Any] | None, str]:
    """`python -m feeder bench` against `system`; its JSON result (None: it failed)."""
    name = getattr(system, "name", "ours")
    seconds = opts.seconds(mode, name)
    args = [
        sys.executable,
        "-m",
        "tests.bench.pipeline.feeder_clock",
        "bench",
        "--target",
        system.url,
        "--tps",
        str(opts.tps(mode, name)),
        "--duration",
        str(seconds),
        "--mode",
        mode,
        "--batch-size",
        str(opts.batch_size),
        "--batch-linger-ms",
        str(opts.batch_linger_ms),
        "--connections",
        str(opts.connections),
        "--symbols",
        str(opts.symbols),
        "--seed",
        str(seed),
        "--json",
        "--out",
        str(out),
    ]
    out.unlink(missing_ok=True)
    timeout = seconds * 8 + 180  # a baseline far behind drains for long; never forever
    try:
        done = subprocess.run(args, cwd=ROOT, env=system.env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"feeder timed out after {timeout:.0f} s"
    tail = done.stderr.decode(errors="replace")[-2000:]
    if not out.exists():
        return None, f"feeder exit {done.returncode}: {tail}"
    return json.loads(out.read_text()), tail


def one_run(
    system: System,
    watcher: ViewWatcher,
    servers: PrivateServers,
    mode: str,
    opts: Options,
    seed: int,
    work: Path,
    profiler: Profiler | None,
    psycopg_url: str = "",
) -> dict[str, Any]:
    """One measured run of one system in one mode (wrk needs `psycopg_url` to verify)."""
    servers.truncate()
    settled_s = wait_settled(servers.redis.url)
    watcher.mark()
    sampler = RssSampler(system.groups)
    sampler.sample()
    sampler.start()
    uses_redis = system.name == "ours"
    commands0 = redis_command_usec(servers.redis.url) if uses_redis else {}
    acks0 = api_ack_buckets(system.url, watcher.headers) if uses_redis else {}
    redis_cpu0 = redis_main_thread_cpu(servers.redis.url) if uses_redis else 0.0
    if uses_redis:
        redis_stalls(servers.redis.url)  # reset: what follows belongs to this run
    cpu0, t0 = groups_cpu(system.groups), time.monotonic()
    feeder0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if profiler is not None:
        profiler.start(system)
    if mode == "wrk":
        result, tail = run_wrk(
            system.url,
            system.env,
            psycopg_url,
            opts.wrk_duration,
            opts.wrk_threads,
            opts.wrk_connections,
            work,
        )
    else:
        result, tail = run_feeder(system, mode, opts, seed, work / f"{system.name}-{mode}.json")
    if result is not None:
        # The feeder stops at "all in Postgres"; the views may still be behind. Their work
        # belongs to this run (CPU) and must not leak into the next run's view count.
        wait_views(watcher, result["accepted"])
    wall = time.monotonic() - t0
    cpu1 = groups_cpu(system.groups)
    commands1 = redis_command_usec(servers.redis.url) if uses_redis else {}
    acks1 = api_ack_buckets(system.url, watcher.headers) if uses_redis else {}
    redis_cpu1 = redis_main_thread_cpu(servers.redis.url) if uses_redis else 0.0
    cpu_by = {label: round(cpu1[label] - cpu0[label], 2) for label in cpu1}
    cpu = sum(cpu_by.values())
    feeder1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the feeder: our only reaped child
    feeder_cpu = sum(getattr(feeder1, f) - getattr(feeder0, f) for f in ("ru_utime", "ru_stime"))
    rss = sampler.stop()
    profile = profiler.finish() if profiler is not None else None
    with watcher.lock:
        history = list(watcher.history)
        events = watcher.events
    if result is None:
        return {"system": system.name, "mode": mode, "ok": False, "error": tail, "rss_mb": rss}
    accepted = result["accepted"]
    clock = result["clock"]
    elapsed = clock["last_ack"] - clock["first_send"]
    v = result["verification"]
    pg_span = elapsed + v["drain_s"]
    run = {
        "system": system.name,
        "mode": mode,
        "ok": bool(v["exactly_once"]),
        "offered_tps": result["offered_tps"],
        "offered": result["offered"],
        "accepted": accepted,
        "requests": result["requests"],
        "ticks_per_request": round(accepted / result["requests"], 1)
        if result["requests"]
        else None,
        "accepted_tps": accepted / elapsed if elapsed > 0 else None,
        "views": in_views(history, accepted, clock["first_send"]) | {"events": events},
        "pg_tps": v["stored"] / pg_span if pg_span > 0 else None,
        "send_span_s": round(elapsed, 3),
        # The rate the load generator really offered (the feeder: ticks / time to schedule them
        # all; below the asked rate when it ran short of CPU). wrk is unpaced: None.
        "offered_real_tps": result["offered"] / (clock["produced"] - clock["first_send"])
        if clock.get("produced") and clock["produced"] > clock["first_send"]
        else None,
        "ack_ms": result["ack_ms"],
        "view_ms": result["view_ms"],
        "persist_ms": result["persist_ms"],
        "cpu_s": round(cpu, 2),
        "cpu_s_by_process": cpu_by,
        "cpu_s_per_1k": round(cpu / accepted * 1000, 4) if accepted else None,
        "redis_commands": redis_cost(commands0, commands1, accepted),
        "redis_us_per_tick": round((redis_cpu1 - redis_cpu0) / accepted * 1e6, 2)
        if uses_redis and accepted
        else None,
        "api_ack_ms": bucket_quantiles(acks0, acks1) if acks1 else None,
        "redis_stalls_ms": redis_stalls(servers.redis.url) if uses_redis else {},
        "wall_s": round(wall, 2),
        "waited_for_redis_s": round(settled_s, 1),
        "feeder_cpu_s": round(feeder_cpu, 2),  # (+ py-spy when profiling) not in cpu_s
        "rss_mb": rss,
        "errors": result["errors"],
        "non_2xx": result.get("non_2xx"),
        "verification": v,
        "run_id": result["run_id"],
    }
    if profile is not None:
        run["profile"] = profile
    return run


def wait_for_baseline(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not BASELINE_APP.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(5)
    return True


def run(opts: Options) -> dict[str, Any]:
    """The whole benchmark; returns the report (also written to opts.json_path)."""
    started = time.monotonic()
    systems_wanted = list(opts.systems)
    if "wrk" in opts.modes and wrk_path() is None:
        raise SystemExit(INSTALL_HINT)
    if "baseline" in systems_wanted and not wait_for_baseline(opts.baseline_wait):
        raise SystemExit(f"{BASELINE_APP} does not exist: the baseline cannot run")
    log_dir = opts.json_path.parent / (opts.json_path.stem + "-logs")
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-pipe-")))
        say(f"starting private embedded Redis and PostgreSQL in {tmp}")
        servers = PrivateServers.start(stack, tmp)
        settings = product_settings(servers.redis.url, servers.postgres.url)
        with redis.Redis.from_url(servers.redis.url) as client:
            client.config_set("latency-monitor-threshold", LATENCY_THRESHOLD_MS)
        systems: dict[str, System] = {}
        watchers: dict[str, ViewWatcher] = {}
        headers = {"x-api-key": settings.api_key.get_secret_value()} if settings.api_key else {}
        for name in systems_wanted:
            if name == "ours":
                say(
                    f"starting ours: {opts.api_procs} API process(es), workers "
                    f"--processes {opts.worker_processes} --threads {opts.worker_threads}"
                )
                system = start_ours(
                    servers,
                    settings,
                    log_dir,
                    opts.api_procs,
                    opts.worker_processes,
                    opts.worker_threads,
                )
            else:
                say("starting the baseline: one uvicorn process")
                system = start_baseline(servers, settings, log_dir)
            stack.callback(system.stop)
            systems[name] = system
            watcher = ViewWatcher(system.stream_url, headers)
            watcher.start()
            stack.callback(watcher.stop)
            watcher.ready.wait(10)
            watchers[name] = watcher
        say(f"up after {time.monotonic() - started:.1f} s")
        dedup_ids = int(opts.extra.get("dedup_ids", DEDUP_IDS))
        # Modes outside, runs inside: a 60 s batch at 50,000/s leaves millions of remembered
        # event_ids (and an AOF rewrite) in Redis, which the per-tick modes should not inherit.
        for mode in opts.modes:
            for k in range(opts.runs):
                for name in systems_wanted:
                    profiler = None
                    profiled = name == "ours" and mode == opts.profile_mode and k == 0
                    if opts.profile is not None and profiled:
                        profiler = Profiler(opts.profile, opts.profile_seconds)
                    r = one_run(
                        systems[name],
                        watchers[name],
                        servers,
                        mode,
                        opts,
                        seed=k + 1,
                        work=tmp,
                        profiler=profiler,
                        psycopg_url=settings.psycopg_url,
                    )
                    r["run"] = k + 1
                    runs.append(r)
                    say(report.one_line(r))
        dedup = targets.dedup_memory(servers.redis.url, dedup_ids) if dedup_ids else None
        if dedup is not None:
            say(f"dedup memory: {dedup}")
    took = time.monotonic() - started
    out = {
        "params": {
            "runs": opts.runs,
            "duration_s": opts.duration,
            "single_tps": opts.single_tps,
            "batch_tps": opts.batch_tps,
            "batch_duration_s": opts.seconds("batch"),
            "baseline_batch_tps": opts.tps("batch", "baseline"),
            "baseline_batch_duration_s": opts.seconds("batch", "baseline"),
            "wrk": {
                "duration_s": opts.wrk_duration,
                "threads": opts.wrk_threads,
                "connections": opts.wrk_connections,
            },
            "dedup_ttl_s": settings.dedup_ttl,
            "batch_size": opts.batch_size,
            "connections": opts.connections,
            "symbols": opts.symbols,
            "ours": {
                "api_procs": opts.api_procs,
                "worker_processes": opts.worker_processes,
                "worker_threads": opts.worker_threads,
            },
            "baseline": {"api_procs": 1},
            "settings_env": {
                k: v
                for k, v in settings_env(settings).items()
                if k in ("FLUSH_INTERVAL", "BATCH_SIZE")
            },
        },
        "machine": machine(),
        "runs": runs,
        "summary": report.summarize(runs),
        "exactly_once": all(r["ok"] for r in runs) and bool(runs),
        "took_s": round(took, 1),
    }
    out["ratios"] = report.ratios(out["summary"])
    out["dedup_memory"] = dedup
    out["targets"] = targets.rows(out)
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(out, indent=1, default=str))
    if opts.plot:
        out["plot"] = str(report.plot(out, opts.json_path.with_suffix(".png")))
        opts.json_path.write_text(json.dumps(out, indent=1, default=str))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table; 1 when any run's exactly-once verification failed."""
    opts = parse_args(argv)
    out = run(opts)
    print()
    print(report.render(out))
    print()
    print(targets.render(out["targets"]))
    print(f"\nJSON: {opts.json_path}" + (f"   plot: {out['plot']}" if "plot" in out else ""))
    print(f"took {out['took_s']:.0f} s")
    return 0 if out["exactly_once"] else 1
