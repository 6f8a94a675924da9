"""The whole overload run: a private system, the sustainable rate, the overload, the drain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from backend.bus.keys import Keys
from backend.settings import Settings
from tests.bench.machine import machine
from tests.bench.overload.backlog import backlog_bound, max_handoff_ticks
from tests.bench.overload.convergence import verify, wait_converged
from tests.bench.overload.ledger import SYMBOLS, Ledger, Tally
from tests.bench.overload.options import Options
from tests.bench.overload.sampler import Sampler, Watched
from tests.bench.overload.senders import offer
from tests.bench.overload.summary import backlog_summary, memory_summary, percentiles
from tests.bench.overload.sustainable import SUSTAINABLE_DEFINITION, measure_sustainable
from tests.bench.text import say
from tests.support.processes import AUTH, Processes, product_settings, running, settings_env
from tests.support.servers import PrivateServers
from tests.support.waiting import wait_for


def system_settings(redis_url: str, pg_url: str, max_backlog: int | None) -> Settings:
    """The product's defaults (not the tests' fast flushes), on our servers; MAX_BACKLOG only
    when given."""
    given = {} if max_backlog is None else {"max_backlog": max_backlog}
    return product_settings(redis_url, pg_url, **given)


def stall_worker(pgid: int, seconds: float) -> Callable[[], None]:
    """SIGSTOP the worker's process group now and SIGCONT it after `seconds`; returns the
    resume function (idempotent) for early clean-up."""
    os.killpg(pgid, signal.SIGSTOP)
    say(f"worker stopped (SIGSTOP) for {seconds:g} s")

    def resume() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGCONT)

    timer = threading.Timer(seconds, resume)
    timer.daemon = True
    timer.start()

    def cancel() -> None:
        timer.cancel()
        resume()

    return cancel


def run(opts: Options) -> dict[str, Any]:
    """The whole benchmark; returns the report (also written to opts.json_path)."""
    ledger, tally = Ledger(), Tally()
    log_dir = opts.json_path.parent / (opts.json_path.stem + "-logs")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-overload-")))
        say(f"starting private embedded Redis and PostgreSQL in {tmp}")
        servers = PrivateServers.start(stack, tmp)
        redis_server, pg_server = servers.redis, servers.postgres
        settings = system_settings(redis_server.url, pg_server.url, opts.max_backlog)
        max_backlog = settings.max_backlog
        max_handoff = max_handoff_ticks(opts.batch, opts.senders, settings.ingest_max_batch)
        bound = backlog_bound(max_backlog, opts.batch, opts.senders, settings.ingest_max_batch)
        keys = Keys.from_settings(settings)
        env = settings_env(settings)  # MAX_BACKLOG, INGEST_MAX_BATCH included
        procs: Processes = stack.enter_context(running(env, log_dir))
        procs.start_api()
        procs.start_worker("worker", opts.worker_processes, opts.worker_threads)
        redis = Redis.from_url(redis_server.url)
        stack.callback(redis.close)
        wait_for(
            lambda: redis.zcard(keys.heartbeats) >= opts.worker_processes,
            60,
            what="worker heartbeats",
        )
        # Reads need x-api-key only when the environment sets API_KEY (settings_env passes it on).
        api_headers = {"x-api-key": settings.api_key.get_secret_value()} if settings.api_key else {}
        api = stack.enter_context(
            httpx.Client(base_url=procs.api_url, auth=AUTH, headers=api_headers, timeout=30)
        )
        assert redis_server.pid is not None and pg_server.pid is not None
        watched = Watched(
            api=procs.procs["api"].pid,
            worker=procs.procs["worker"].pid,
            redis=redis_server.pid,
            postgres=pg_server.pid,
        )
        sampler = Sampler(watched, redis_server.url, keys, tally, procs.api_url, api_headers)
        sampler.sample()
        sampler.start()
        stack.callback(sampler.stop)
        say(f"system up (run {ledger.run}, logs in {log_dir})")

        if opts.sustainable is None:
            sampler.phase = "measure"
            say(f"measuring the sustainable rate: {opts.measure_seconds:g} s at full speed")
            measured = measure_sustainable(procs.api_url, ledger, tally, redis, keys, opts)
            sustainable = {
                "source": "measured",
                "definition": SUSTAINABLE_DEFINITION.format(
                    s=opts.measure_seconds, senders=opts.senders, batch=opts.batch
                ),
                **measured,
            }
            say(
                f"accepted {measured['accept_tps']:,.0f}/s, calc {measured['calc_tps']:,.0f}/s, "
                f"Postgres {measured['persist_tps']:,.0f}/s -> sustainable "
                f"{measured['tps']:,.0f} ticks/s; draining before the overload"
            )
            sampler.phase = "measure-drain"
            sustainable["drain"] = wait_converged(api, pg_server.url, sampler, ledger, opts)
            say(f"drained in {sustainable['drain']['seconds']:.1f} s")
        else:
            sustainable = {
                "source": "given",
                "definition": "--sustainable",
                "tps": opts.sustainable,
            }
        if sustainable["tps"] <= 0:
            raise SystemExit("sustainable rate came out as 0: nothing drained; see the logs")
        target = opts.multiple * sustainable["tps"]
        before = asdict(tally)
        before_latencies = len(tally.latencies)

        say(f"overload: {target:,.0f} ticks/s for {opts.seconds:g} s")
        sampler.phase = "overload"
        sampler.sample()
        if opts.stall_worker > 0:
            stall = stall_worker(procs.procs["worker"].pid, opts.stall_worker)
            stack.callback(stall)  # SIGCONT at once if we fail before the timer fires
        took = asyncio.run(
            offer(procs.api_url, ledger, tally, opts, tps=target, seconds=opts.seconds)
        )
        sampler.sample()
        sampler.phase = "drain"
        after = asdict(tally)
        overload = {k: after[k] - before[k] for k in after if k not in ("errors", "latencies")}
        overload["acked"] = overload["accepted"] + overload["duplicates"]
        overload["errors"] = dict(Counter(after["errors"]) - Counter(before["errors"]))
        overload |= {
            "target_tps": target,
            "seconds": opts.seconds,
            "took_s": took,
            "answer_s": percentiles(tally.latencies[before_latencies:]),
        }
        say(
            f"stopped after {took:.1f} s: offered {overload['offered']:,}, acked "
            f"{overload['acked']:,}, 429s {overload['http_429']:,}; draining"
        )
        drain = wait_converged(api, pg_server.url, sampler, ledger, opts)
        sampler.phase = "drained"
        sampler.sample()
        sampler.stop()
        outcome = "converged" if drain["converged"] else "gave up"
        say(f"drain {outcome} after {drain['seconds']:.1f} s")
        correctness = verify(api, pg_server.url, ledger)

    samples = sampler.samples
    report = {
        "params": {
            "seconds": opts.seconds,
            "multiple": opts.multiple,
            "batch": opts.batch,
            "senders": opts.senders,
            "max_backlog": max_backlog,
            "max_backlog_given": opts.max_backlog is not None,
            "ingest_max_batch": settings.ingest_max_batch,
            "worker_processes": opts.worker_processes,
            "worker_threads": opts.worker_threads,
            "stall_worker_s": opts.stall_worker,
            "symbols": list(SYMBOLS),
            "run": ledger.run,
        },
        "machine": machine(),
        "sustainable": sustainable,
        "overload": overload,
        "backlog": backlog_summary(samples, max_backlog, max_handoff, bound),
        "memory": memory_summary(samples),
        "drain": drain,
        "correctness": correctness,
        "totals": asdict(tally) | {"errors": dict(tally.errors), "latencies": None},
        "samples": samples,
    }
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(report, indent=1, default=str))
    return report
