"""`python -m tests.bench.calc_concurrency`: calc alone, on a private Redis, 1 vs N threads.

Applies the same stream of 500-tick batches (10 symbols, a random walk, 10,000 ticks/s of event
time) with `tasks.calc.apply_batch`, first filling the 60 s windows single-threaded, then timing
the rest with `--threads` workers sharing one process (its symbol locks and state cache), and
once more with one thread. Prints ticks/s, Python CPU µs per tick and the transactions that had
to be redone (WATCH aborts, `calc_conflicts`). This is how the per-symbol transactions were
chosen (docs/scaling-out.md); no timed asserts anywhere.
"""

from __future__ import annotations

import argparse
import queue
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

from redis import Redis

from backend.bus.keys import Keys
from backend.bus.ledger import CALC_CONFLICTS, read_gauges_sync
from backend.bus.realtime import Ring
from backend.core.ticks import Tick
from backend.embedded import EmbeddedRedis
from backend.settings import Settings
from tasks.calc import CalcContext, apply_batch
from tests.support.servers import free_port

T0 = 1_700_000_000_000_000


def stream(seed: int, symbols: int, rate: int, seconds: float) -> list[Tick]:
    rng = random.Random(seed)
    names = [f"SYM{i}" for i in range(symbols)]
    price = dict.fromkeys(names, 100.0)
    seq: dict[tuple[str, str], int] = {}
    step = 1_000_000 // rate
    out = []
    for i in range(int(rate * seconds)):
        symbol, source = names[i % symbols], f"s{i % 3}"
        price[symbol] = round(price[symbol] * (1 + rng.gauss(0, 1e-4)), 2)
        seq[(symbol, source)] = seq.get((symbol, source), 0) + 1
        ts = T0 + i * step
        out.append(
            Tick(uuid.uuid4().hex, symbol, ts, price[symbol], round(rng.uniform(0.01, 5), 3),
                 source, seq[(symbol, source)], ts + 1_000)
        )  # fmt: skip
    return out


def _conflicts(ctx: CalcContext) -> int:
    """Transactions redone so far, as the ledger reads them."""
    gauges = read_gauges_sync(
        ctx.redis, ctx.keys, heartbeat_timeout_ms=10_000, now_ms=time.time() * 1000
    )
    return int(gauges.counters.get(CALC_CONFLICTS, 0))


def timed(ctx: CalcContext, batches: list[list[Tick]], threads: int) -> dict[str, float]:
    work: queue.Queue[list[Tick]] = queue.Queue()
    for batch in batches:
        work.put(batch)
    conflicts0 = _conflicts(ctx)

    def run() -> None:
        while True:
            try:
                batch = work.get_nowait()
            except queue.Empty:
                return
            apply_batch(ctx, uuid.uuid4().hex, batch, batch[-1].ts_us + 2_000)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ticks = sum(len(b) for b in batches)
    conflicts = _conflicts(ctx) - conflicts0
    return {"ticks_per_s": ticks / wall, "cpu_us_per_tick": cpu / ticks * 1e6, "redone": conflicts}


def run(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    p = argparse.ArgumentParser(prog="python -m tests.bench.calc_concurrency", description=__doc__)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--symbols", type=int, default=10)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--timed-seconds", type=float, default=13.0, help="event time timed")
    p.add_argument("--rate", type=int, default=10_000, help="ticks per second of event time")
    a = p.parse_args(argv)
    rate = a.rate
    with tempfile.TemporaryDirectory(prefix="tickstream-calc-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", free_port())
        server.start()
        try:
            results: dict[int, dict[str, float]] = {}
            for threads in (a.threads, 1):
                client = Redis.from_url(server.url, max_connections=64)
                client.flushdb()
                ctx = CalcContext(
                    redis=client,
                    keys=Keys.from_settings(Settings(REDIS_NAMESPACE="calc-bench")),
                    ring=Ring("calc-bench:realtime", 10_000),
                    done_ttl_s=600,
                    stale_after_s=10.0,
                )
                ticks = stream(1, a.symbols, rate, 61 + a.timed_seconds)
                batches = [ticks[i : i + a.batch] for i in range(0, len(ticks), a.batch)]
                warm = int(61 * rate / a.batch)  # full 60 s windows before timing
                timed(ctx, batches[:warm], 1)
                results[threads] = timed(ctx, batches[warm:], threads)
                client.close()
        finally:
            server.stop()
    print(f"calc on full 60 s windows, {a.symbols} symbols, {a.batch}-tick batches, one process:")
    for threads, r in results.items():
        print(
            f"  {threads} thread(s): {r['ticks_per_s']:>9,.0f} ticks/s, Python CPU "
            f"{r['cpu_us_per_tick']:.1f} µs/tick, transactions redone {r['redone']:.0f}"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
