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
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg
from redis import Redis

from backend.bus.keys import Keys
from backend.bus.ledger import (
    CALC_TICKS,
    INGEST_ACCEPTED,
    OUTBOX_TICKS,
    ROWS_WRITTEN,
    read_gauges_sync,
)
from backend.config import Settings
from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from feeder.outcomes import parse_retry_after
from tests.bench.pipeline.systems import Servers
from tests.integration.harness import (
    AUTH,
    Processes,
    make_settings,
    running,
    settings_env,
    wait_for,
)

DEFAULT_JSON = Path("artifacts/bench/overload.json")
SYMBOLS = ("OVA", "OVB", "OVC", "OVD", "OVE")
SOURCE = "bench"
JSON_HEADERS = {"content-type": "application/json"}
GRACE_S = 30.0  # after the deadline, how long a sender keeps retrying an unanswered batch
STATS_TIMEOUT_S = 5.0  # GET /stats by the sampler; a slower answer is recorded as None
MB = 1024 * 1024
SUSTAINABLE_DEFINITION = (
    "the slower of the calc and Postgres drain rates (stats counters calc_ticks, rows_written) "
    "over the last 2/3 of {s:g} s in which {senders} senders offered {batch}-tick batches as "
    "fast as they could, API and worker sharing the box"
)
_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", flush=True)


@dataclass
class Options:
    seconds: float = 60.0
    multiple: float = 10.0
    sustainable: float | None = None  # ticks/s; None: measure it
    measure_seconds: float = 15.0
    max_backlog: int | None = None  # ticks; None: the product's default (Settings)
    batch: int = 500
    senders: int = 16
    worker_processes: int = 2
    worker_threads: int = 2
    drain_timeout: float = 900.0
    stall_timeout: float = 60.0  # give up draining when nothing moved for this long
    stall_worker: float = 0.0  # SIGSTOP the worker for this long at the start of the overload
    json_path: Path = DEFAULT_JSON


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
    a = p.parse_args(argv)
    return Options(
        seconds=a.seconds,
        multiple=a.multiple,
        sustainable=a.sustainable,
        measure_seconds=a.measure_seconds,
        max_backlog=a.max_backlog,
        batch=a.batch,
        senders=a.senders,
        drain_timeout=a.drain_timeout,
        stall_timeout=a.stall_timeout,
        stall_worker=a.stall_worker,
        json_path=a.json_path,
    )


# --- what was sent and what came of it ----------------------------------------------------------


@dataclass
class Ledger:
    """Every batch by number: event_id `<run>-<batch>-<index>`, symbol SYMBOLS[index % 5],
    volume 1, source "bench", ts and price the same for the whole batch.

    Kept per batch, not per tick, so the bench's own memory stays small at a million ticks.
    """

    run: str = field(default_factory=lambda: f"ov{secrets.token_hex(3)}")
    next_batch: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    acked: dict[int, list[int] | None] = field(default_factory=dict)  # None: every item
    refused: set[int] = field(default_factory=set)  # last answer 429 at the deadline: not written
    unknown: set[int] = field(default_factory=set)  # no final answer: may or may not be stored
    failed: set[int] = field(default_factory=set)  # a final non-retryable error answer

    def new_batch(self, n: int) -> tuple[int, bytes]:
        k = self.next_batch
        self.next_batch += 1
        self.sizes[k] = n
        ts = datetime.now(UTC).isoformat()
        # A stationary market: one price per batch, pseudo-random in 95..105, no trend. (A trend
        # keeps evicting the window's low or high, which makes calc re-read the whole window.)
        price = round(95.0 + 10.0 * random.Random(k).random(), 2)
        body = [
            {
                "symbol": SYMBOLS[i % len(SYMBOLS)],
                "price": price,
                "volume": 1.0,
                "source": SOURCE,
                "ts": ts,
                "event_id": f"{self.run}-{k}-{i}",
            }
            for i in range(n)
        ]
        return k, orjson.dumps(body)

    def items(self, k: int) -> list[int]:
        """The acknowledged item indices of batch k."""
        acked = self.acked[k]
        return list(range(self.sizes[k])) if acked is None else acked

    def acked_ticks(self) -> int:
        return sum(self.sizes[k] if v is None else len(v) for k, v in self.acked.items())

    def acked_per_symbol(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for k in self.acked:
            for i in self.items(k):
                out[SYMBOLS[i % len(SYMBOLS)]] += 1
        return out


@dataclass
class Tally:
    """What the senders saw, in ticks unless named otherwise."""

    batches: int = 0
    offered: int = 0  # distinct ticks put on the wire (first attempts)
    posted: int = 0  # ticks POSTed, re-sends included
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0  # acknowledged as duplicates (a re-send after a lost answer)
    rejected: int = 0  # items rejected inside a 200 answer
    http_429: int = 0  # 429 answers
    shed: int = 0  # ticks in 429'd requests
    abandoned: int = 0  # ticks whose last answer was a 429 when the time was up: never written
    unknown: int = 0  # ticks without a final answer: may or may not be stored
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds per answered request

    @property
    def acked(self) -> int:
        return self.accepted + self.duplicates


async def deliver(
    client: httpx.AsyncClient, ledger: Ledger, tally: Tally, k: int, body: bytes, deadline: float
) -> None:
    """POST one batch until it is answered, re-sending the same bytes like the feeder does."""
    loop = asyncio.get_running_loop()
    n = ledger.sizes[k]
    failures = 0
    while True:
        tally.requests += 1
        tally.posted += n
        sent = loop.time()
        try:
            r = await client.post("/ingest/ticks", content=body, headers=JSON_HEADERS)
            tally.latencies.append(loop.time() - sent)
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
            failures += 1
            if loop.time() >= deadline + GRACE_S:
                ledger.unknown.add(k)
                tally.unknown += n
                return
            await asyncio.sleep(min(0.1 * 2**failures, 2.0))
            continue
        if r.status_code == 200:
            answer = r.json()
            tally.accepted += answer["accepted"]
            tally.duplicates += answer["duplicates"]
            rejected = {item["index"] for item in answer["rejected"]}
            tally.rejected += len(rejected)
            ledger.acked[k] = [i for i in range(n) if i not in rejected] if rejected else None
            return
        if r.status_code == 429:
            tally.http_429 += 1
            tally.shed += n
            await asyncio.sleep(parse_retry_after(r.headers.get("retry-after")) or 1.0)
            if loop.time() >= deadline:  # time is up: a 429 wrote nothing, so just stop
                ledger.refused.add(k)
                tally.abandoned += n
                return
            continue
        tally.errors[f"HTTP {r.status_code}"] += 1
        if r.status_code >= 500 and loop.time() < deadline + GRACE_S:
            await asyncio.sleep(1.0)
            continue
        (ledger.unknown if r.status_code >= 500 else ledger.failed).add(k)
        if r.status_code >= 500:
            tally.unknown += n
        return


async def offer(
    api_url: str,
    ledger: Ledger,
    tally: Tally,
    *,
    tps: float | None,
    seconds: float,
    senders: int,
    batch: int,
) -> float:
    """Offer `tps` ticks/s (None: as fast as they go) for `seconds`; returns the time it took.

    Batch j is due at start + j * batch / tps. A sender that was busy re-sending takes the next
    due batch at once, so the offered demand never drops below the target while senders are free.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds
    interval = batch / tps if tps else 0.0
    slots = itertools.count()
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(
        base_url=api_url, auth=AUTH, timeout=30.0, limits=limits
    ) as client:

        async def sender() -> None:
            while True:
                due = start + next(slots) * interval
                if due >= deadline or loop.time() >= deadline:
                    return
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                k, body = ledger.new_batch(batch)
                tally.batches += 1
                tally.offered += batch
                await deliver(client, ledger, tally, k, body, deadline)

        await asyncio.gather(*(sender() for _ in range(senders)))
    return loop.time() - start


# --- sampling ------------------------------------------------------------------------------------


@dataclass
class Watched:
    """The processes to sample: their roots, found again every second (children come and go)."""

    api: int
    worker: int
    redis: int
    postgres: int
    bench: int = field(default_factory=os.getpid)


def _rss_cpu(proc: psutil.Process) -> tuple[int, float, int]:
    """(RSS, user+system CPU seconds, PSS) of one process; PSS from smaps_rollup."""
    with proc.oneshot():
        rss = proc.memory_info().rss
        cpu = proc.cpu_times()
    try:
        pss = getattr(proc.memory_full_info(), "pss", rss)
    except psutil.Error:
        pss = rss
    return rss, cpu.user + cpu.system, pss


def max_handoff_ticks(batch: int, senders: int, ingest_max_batch: int) -> int:
    """The most ticks one group commit (one ingest script call) can carry here: whole requests
    of `batch` ticks while they fit in INGEST_MAX_BATCH, at least one, at most one per sender."""
    return batch * min(senders, max(1, ingest_max_batch // batch))


def backlog_bound(max_backlog: int, batch: int, senders: int, ingest_max_batch: int) -> int:
    """The highest backlog (ticks) the ingest check allows: accepted at <= MAX_BACKLOG - 1, then
    + 2 per new tick of that hand-off (it waits for calc and for Postgres)."""
    return max_backlog - 1 + 2 * max_handoff_ticks(batch, senders, ingest_max_batch)


class Sampler(threading.Thread):
    """Once a second: RSS and CPU of every process, the backlog and the pipeline counters."""

    def __init__(
        self,
        watched: Watched,
        redis_url: str,
        keys: Keys,
        tally: Tally,
        api_url: str,
        api_headers: dict[str, str],
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.watched = watched
        self.redis = Redis.from_url(redis_url)
        # GET /stats takes its sample when asked; a busy API may answer late: then None.
        self.api = httpx.Client(base_url=api_url, headers=api_headers, timeout=STATS_TIMEOUT_S)
        self.keys = keys
        self.tally = tally
        self.phase = "idle"
        self.samples: list[dict[str, Any]] = []
        self.worker_children: dict[int, str] = {}  # pid -> label, in order of first sight
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def _proc(self, pid: int) -> psutil.Process:
        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            proc = self._procs[pid] = psutil.Process(pid)
        return proc

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._proc(pid)
            return [root, *(self._proc(c.pid) for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def _read(self, procs: list[psutil.Process]) -> tuple[int, float, int, int]:
        """(RSS, CPU s, PSS, count) summed over `procs` (ones that vanished meanwhile skipped)."""
        rss = pss = count = 0
        cpu = 0.0
        for proc in procs:
            try:
                r, c, p = _rss_cpu(proc)
            except psutil.Error:
                continue
            rss, cpu, pss, count = rss + r, cpu + c, pss + p, count + 1
        return rss, cpu, pss, count

    def sample(self) -> dict[str, Any]:
        with self._lock:
            return self._sample()

    def _sample(self) -> dict[str, Any]:
        w = self.watched
        procs: dict[str, dict[str, float]] = {}

        def put(label: str, group: list[psutil.Process]) -> None:
            rss, cpu, pss, count = self._read(group)
            if count:
                procs[label] = {"rss": rss, "cpu_s": cpu, "pss": pss, "procs": count}

        put("api", self._tree(w.api))
        worker_tree = self._tree(w.worker)
        put("worker parent", worker_tree[:1])
        for child in worker_tree[1:]:
            label = self.worker_children.setdefault(
                child.pid, f"worker child {len(self.worker_children) + 1}"
            )
            put(label, [child])
        put("worker total", worker_tree)
        put("redis-server (+fork)", self._tree(w.redis))  # AOF rewrites fork a child
        put("postgres (sum)", self._tree(w.postgres))
        put("bench (this)", self._tree(w.bench)[:1])
        backlog_ticks = self._stats_backlog()
        gauges = read_gauges_sync(  # one consistent snapshot, the ledger's own read
            self.redis, self.keys, heartbeat_timeout_ms=10_000, now_ms=time.time() * 1000
        )
        queue, outbox = gauges.queue_depth, gauges.outbox_entries
        accepted, calc, written, outbox_ticks = (
            int(gauges.counters.get(name, 0))
            for name in (INGEST_ACCEPTED, CALC_TICKS, ROWS_WRITTEN, OUTBOX_TICKS)
        )
        used = int(self.redis.info("memory")["used_memory"])
        keys = int(self.redis.dbsize())
        t = self.tally
        sample = {
            "t": round(time.monotonic() - _T0, 3),
            "phase": self.phase,
            "backlog_ticks": backlog_ticks,  # GET /stats gauges.backlog_ticks; None: no answer
            "backlog_ticks_redis": gauges.backlog_ticks,
            "outbox_ticks": outbox_ticks,
            "queue": queue,
            "outbox": outbox,
            "handoffs": queue + outbox,
            "ingest_accepted": accepted,
            "calc_ticks": calc,
            "rows_written": written,
            "calc_lag": accepted - calc,
            "persist_lag": accepted - written,
            "redis_used_memory": used,
            "redis_keys": keys,
            "offered": t.offered,
            "acked": t.acked,
            "http_429": t.http_429,
            "procs": procs,
        }
        self.samples.append(sample)
        return sample

    def _stats_backlog(self) -> int | None:
        """`gauges.backlog_ticks` of GET /stats, or None when the API did not answer in time."""
        try:
            r = self.api.get("/stats")
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        return int(r.json()["gauges"]["backlog_ticks"])

    def run(self) -> None:
        while not self._halt.wait(1.0):
            try:
                self.sample()
            except Exception as exc:  # a sample lost is not worth stopping the run for
                say(f"sampler: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.redis.close()
        self.api.close()


# --- the steps -----------------------------------------------------------------------------------


def start_servers(stack: contextlib.ExitStack, tmp: Path) -> tuple[EmbeddedRedis, EmbeddedPostgres]:
    """Private embedded Redis and PostgreSQL on free ports, stopped when the stack unwinds."""
    servers = Servers.start(stack, tmp)
    return servers.redis, servers.postgres


def system_settings(redis_url: str, pg_url: str, max_backlog: int | None) -> Settings:
    """The product's defaults (not the tests' fast flushes), on our servers; MAX_BACKLOG only
    when given."""
    d = Settings()
    return make_settings(
        redis_url,
        pg_url,
        flush_interval=d.flush_interval,
        heartbeat_timeout_ms=d.heartbeat_timeout_ms,
        outbox_claim_idle_ms=d.outbox_claim_idle_ms,
        max_backlog=d.max_backlog if max_backlog is None else max_backlog,
    )


def measure_sustainable(
    api_url: str, ledger: Ledger, tally: Tally, redis: Redis, keys: Keys, opts: Options
) -> dict[str, Any]:
    """Offer as fast as possible; the rate both calc and Postgres keep up with is sustainable."""
    warm = opts.measure_seconds / 3
    marks: list[tuple[float, int, int, int]] = []

    def mark() -> None:
        accepted, calc, written = (
            int(float(v or 0))
            for v in redis.hmget(keys.stats, "ingest_accepted", "calc_ticks", "rows_written")
        )
        marks.append((time.monotonic(), accepted, calc, written))

    async def run() -> None:
        async def marker() -> None:
            await asyncio.sleep(warm)
            mark()

        task = asyncio.create_task(marker())
        await offer(
            api_url,
            ledger,
            tally,
            tps=None,
            seconds=opts.measure_seconds,
            senders=opts.senders,
            batch=opts.batch,
        )
        await task
        mark()

    asyncio.run(run())
    (t0, a0, c0, w0), (t1, a1, c1, w1) = marks
    dt = t1 - t0
    calc_rate, persist_rate = (c1 - c0) / dt, (w1 - w0) / dt
    return {
        "seconds": opts.measure_seconds,
        "window_s": dt,
        "accept_tps": (a1 - a0) / dt,
        "calc_tps": calc_rate,
        "persist_tps": persist_rate,
        "tps": min(calc_rate, persist_rate),
        "http_429": tally.http_429,
    }


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


def pg_count(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return int(conn.execute("SELECT count(*) FROM md_ticks").fetchone()[0])  # type: ignore[index]


def views(api: httpx.Client) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for symbol in SYMBOLS:
        r = api.get(f"/symbols/{symbol}")
        out[symbol] = r.json().get("ticks_total") if r.status_code == 200 else None
    return out


def stored_unknown(pg_url: str, ledger: Ledger) -> Counter[str]:
    """Per symbol, the stored ticks of batches that never got a final answer (legitimately)."""
    if not ledger.unknown:
        return Counter()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT symbol, count(*) FROM md_ticks "
            "WHERE split_part(event_id, '-', 2)::bigint = ANY(%s) GROUP BY symbol",
            (sorted(ledger.unknown),),
        ).fetchall()
    return Counter({s: int(n) for s, n in rows})


def wait_converged(
    api: httpx.Client, pg_url: str, sampler: Sampler, ledger: Ledger, opts: Options
) -> dict[str, Any]:
    """Poll until the backlog is empty (0 ticks by GET /stats and by the hash, no hand-off
    waiting), md_ticks has every acknowledged tick and the views count exactly those; gives up
    at the drain timeout or when nothing moved for the stall timeout."""
    started = last_move = time.monotonic()
    expected = ledger.acked_per_symbol() + stored_unknown(pg_url, ledger)
    want_rows = sum(expected.values())
    last: tuple[Any, ...] | None = None
    while True:
        s = sampler.sample()
        rows = pg_count(pg_url)
        seen = views(api)
        now = time.monotonic()
        if (
            s["backlog_ticks"] == 0
            and s["backlog_ticks_redis"] == 0
            and s["handoffs"] == 0
            and rows == want_rows
            and seen == {k: expected[k] or None for k in SYMBOLS}
        ):
            return {"converged": True, "seconds": now - started, "rows": rows, "views": seen}
        state = (
            s["backlog_ticks_redis"],
            s["handoffs"],
            rows,
            tuple(seen.values()),
            s["calc_ticks"],
            s["rows_written"],
        )
        if state != last:
            last, last_move = state, now
        if now - started > opts.drain_timeout or now - last_move > opts.stall_timeout:
            return {
                "converged": False,
                "seconds": now - started,
                "rows": rows,
                "views": seen,
                "backlog_ticks": s["backlog_ticks"],
                "backlog_ticks_redis": s["backlog_ticks_redis"],
                "handoffs": s["handoffs"],
            }
        time.sleep(0.5)


def verify(api: httpx.Client, pg_url: str, ledger: Ledger) -> dict[str, Any]:
    """Every acknowledged event_id in md_ticks exactly once; views count exactly the acked ticks."""
    with psycopg.connect(pg_url) as conn:
        per_batch = conn.execute(
            "SELECT split_part(event_id, '-', 2)::bigint, count(*), count(DISTINCT event_id) "
            "FROM md_ticks WHERE event_id LIKE %s GROUP BY 1",
            (f"{ledger.run}-%",),
        ).fetchall()
        stored_symbols = dict(
            conn.execute("SELECT symbol, count(*) FROM md_ticks GROUP BY symbol").fetchall()
        )
        foreign = int(
            conn.execute(
                "SELECT count(*) FROM md_ticks WHERE event_id NOT LIKE %s", (f"{ledger.run}-%",)
            ).fetchone()[0]  # type: ignore[index]
        )
    stored = {int(k): (int(n), int(d)) for k, n, d in per_batch}
    missing = duplicated = 0
    for k in ledger.acked:
        n, d = stored.get(k, (0, 0))
        missing += max(0, len(ledger.items(k)) - d)
    unacked = {"unknown": 0, "refused": 0, "failed": 0, "never_sent": 0}
    for k, (n, d) in stored.items():
        duplicated += n - d
        if k in ledger.acked:
            continue
        kind = (
            "unknown"
            if k in ledger.unknown
            else "refused"
            if k in ledger.refused
            else "failed"
            if k in ledger.failed
            else "never_sent"
        )
        unacked[kind] += d
    expected = ledger.acked_per_symbol() + stored_unknown(pg_url, ledger)
    seen = views(api)
    view_rows = {
        s: {"expected": expected[s], "ticks_total": seen[s], "stored": stored_symbols.get(s, 0)}
        for s in SYMBOLS
    }
    views_exact = all(
        (v["ticks_total"] or 0) == v["expected"] == v["stored"] for v in view_rows.values()
    )
    return {
        "acked": ledger.acked_ticks(),
        "stored": sum(n for n, _ in stored.values()) + foreign,
        "missing": missing,
        "duplicated": duplicated,
        "stored_unacked": unacked,
        "foreign_rows": foreign,
        "views": view_rows,
        "views_exact": views_exact,
        "ok": missing == 0 and duplicated == 0 and views_exact,
    }


# --- summarising ---------------------------------------------------------------------------------


def memory_summary(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per process: RSS idle (before any load), start / at stop of the overload, max over the
    overload and drain, end (converged); CPU % of one core during the overload; PSS likewise."""
    labels = list(dict.fromkeys(label for s in samples for label in s["procs"]))
    over = [s for s in samples if s["phase"] == "overload"]
    loaded = [s for s in samples if s["phase"] in ("overload", "drain")]
    out: dict[str, dict[str, Any]] = {}

    def at(s: dict[str, Any] | None, label: str, key: str) -> float | None:
        return s["procs"].get(label, {}).get(key) if s else None

    for label in labels:
        first_over = over[0] if over else None
        last_over = over[-1] if over else None
        cpu_pct = None
        c0, c1 = at(first_over, label, "cpu_s"), at(last_over, label, "cpu_s")
        if c0 is not None and c1 is not None and last_over["t"] > first_over["t"]:  # type: ignore[index]
            cpu_pct = 100 * (c1 - c0) / (last_over["t"] - first_over["t"])  # type: ignore[index]
        row: dict[str, Any] = {"cpu_pct_overload": cpu_pct}
        for key in ("rss", "pss"):
            values = [v for s in loaded if (v := at(s, label, key)) is not None]
            row[key] = {
                "idle": at(samples[0], label, key),
                "start": at(first_over, label, key),
                "max": max(values) if values else None,
                "at_stop": at(last_over, label, key),
                "end": at(samples[-1], label, key),
                "max_all": max(
                    (v for s in samples if (v := at(s, label, key)) is not None), default=None
                ),
            }
        out[label] = row
    return out


def backlog_summary(
    samples: list[dict[str, Any]], max_backlog: int, max_handoff: int, bound: int
) -> dict[str, Any]:
    """Backlog maxima in ticks (GET /stats, and the bench's own hash reads), hand-offs aside."""
    loaded = [s for s in samples if s["phase"] in ("overload", "drain")] or samples

    def top(rows: list[dict[str, Any]], key: str) -> int | None:
        return max((v for s in rows if (v := s[key]) is not None), default=None)

    return {
        "max_backlog_setting": max_backlog,
        "unit": "ticks waiting for calc + ticks waiting for Postgres (an accepted tick counts 2)",
        "max_handoff_ticks": max_handoff,
        "bound": bound,
        "max": top(loaded, "backlog_ticks"),
        "max_redis_read": top(loaded, "backlog_ticks_redis"),
        "stats_unanswered": sum(1 for s in loaded if s["backlog_ticks"] is None),
        "samples": len(loaded),
        "end": samples[-1]["backlog_ticks"],
        "end_redis_read": samples[-1]["backlog_ticks_redis"],
        "max_handoffs": max(s["handoffs"] for s in loaded),
        "max_queue": max(s["queue"] for s in loaded),
        "max_outbox": max(s["outbox"] for s in loaded),
        "max_calc_lag_ticks": max(s["calc_lag"] for s in loaded),
        "max_persist_lag_ticks": max(s["persist_lag"] for s in loaded),
        "max_redis_used_memory": max(s["redis_used_memory"] for s in loaded),
        "end_redis_used_memory": samples[-1]["redis_used_memory"],
        "end_redis_keys": samples[-1]["redis_keys"],
        "max_all_phases": max(
            top(samples, "backlog_ticks") or 0, top(samples, "backlog_ticks_redis") or 0
        ),
    }


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def q(f: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(f * len(ordered)))] if ordered else None

    return {"p50": q(0.5), "p99": q(0.99), "max": ordered[-1] if ordered else None}


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v / MB:,.0f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def render(report: dict[str, Any]) -> str:
    p, s, o, b = report["params"], report["sustainable"], report["overload"], report["backlog"]
    d, c = report["drain"], report["correctness"]
    secs = o["seconds"]
    errors = ", ".join(f"{k} x{v}" for k, v in o["errors"].items()) or "none"
    lines = [
        f"Overload: {p['multiple']:g} x the sustainable rate for {p['seconds']:g} s; batches of "
        f"{p['batch']}, {p['senders']} senders; API 1 process, worker --processes "
        f"{p['worker_processes']} --threads {p['worker_threads']}; "
        f"{report['machine']['cpus']} CPUs",
        f"sustainable rate   {s['tps']:>10,.0f} ticks/s  ({s['source']}: {s['definition']})",
        *(
            [
                f"  measured as      accepted {s['accept_tps']:,.0f}/s, "
                f"calc {s['calc_tps']:,.0f}/s,"
                f" Postgres {s['persist_tps']:,.0f}/s (when the workers keep up, all three are the "
                "API's accept rate)"
            ]
            if s["source"] == "measured"
            else []
        ),
        f"target rate        {o['target_tps']:>10,.0f} ticks/s",
        f"offered rate       {o['offered'] / secs:>10,.0f} ticks/s  (new ticks on the wire; "
        f"{o['offered']:,} in all)",
        f"posted rate        {o['posted'] / secs:>10,.0f} ticks/s  (re-sends after 429 included)",
        f"accepted rate      {o['acked'] / secs:>10,.0f} ticks/s  ({o['accepted']:,} accepted + "
        f"{o['duplicates']:,} duplicates acknowledged)",
        f"429 answers        {o['http_429']:>10,}          ({o['shed']:,} ticks refused; "
        f"{o['abandoned']:,} still refused at the end, not re-sent)",
        f"other errors       {errors}",
        f"answer time        p50 {_s(o['answer_s']['p50'])}, p99 {_s(o['answer_s']['p99'])}, "
        f"max {_s(o['answer_s']['max'])} per POST (a sender waits for it: the closed loop)",
        f"MAX_BACKLOG        {b['max_backlog_setting']:>10,} ticks     "
        f"({'given' if p['max_backlog_given'] else 'product default'}; ingest answers 429 at "
        f">= it; may pass it by < 2 x {b['max_handoff_ticks']:,} ticks per hand-off: "
        f"up to {b['bound']:,})",
        f"backlog max        {_n(b['max']):>10} ticks     (GET /stats gauges.backlog_ticks = "
        f"waiting for calc + waiting for Postgres, 2 per accepted tick; bench's own reads of "
        f"the counters: max {b['max_redis_read']:,}; /stats unanswered in "
        f"{b['stats_unanswered']} of {b['samples']} samples)",
        f"backlog at the end {_n(b['end']):>10} ticks     (hand-offs waiting max "
        f"{b['max_handoffs']:,}: calc queue {b['max_queue']:,} messages + outbox "
        f"{b['max_outbox']:,} entries)",
        f"ticks waiting max  calc {b['max_calc_lag_ticks']:,}, Postgres "
        f"{b['max_persist_lag_ticks']:,}; Redis used_memory max "
        f"{b['max_redis_used_memory'] / MB:,.0f} MB; when drained: "
        f"{b['end_redis_used_memory'] / MB:,.0f} MB in {b['end_redis_keys']:,} keys",
        f"drain time         {d['seconds']:>10.1f} s        "
        f"({'converged' if d['converged'] else 'DID NOT CONVERGE'})",
        f"missing            {c['missing']:>10,}          (of {c['acked']:,} acknowledged)",
        f"duplicated         {c['duplicated']:>10,}          (rows; views exact: "
        f"{'yes' if c['views_exact'] else 'NO'}; stored without ack: "
        f"{sum(c['stored_unacked'].values()):,} {c['stored_unacked']})",
        "",
        "RSS MB: idle (before any load), start / max / at stop of the overload (max includes the "
        "drain), end (drained); max PSS: shared pages split between sharers (sums of forked "
        "processes, e.g. PostgreSQL backends or Redis' AOF-rewrite child, double-count RSS); "
        "CPU %: of one core during the overload",
    ]
    rows = []
    for label, m in report["memory"].items():
        r = m["rss"]
        cpu = m["cpu_pct_overload"]
        rows.append(
            [
                label,
                _mb(r["idle"]),
                _mb(r["start"]),
                _mb(r["max"]),
                _mb(r["at_stop"]),
                _mb(r["end"]),
                _mb(m["pss"]["max"]),
                "-" if cpu is None else f"{cpu:.0f}",
            ]
        )
    headers = ["process", "idle", "start", "max", "at stop", "end", "max PSS", "CPU %"]
    lines.append(_table(headers, rows))
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def run(opts: Options) -> dict[str, Any]:
    """The whole benchmark; returns the report (also written to opts.json_path)."""
    ledger, tally = Ledger(), Tally()
    log_dir = opts.json_path.parent / (opts.json_path.stem + "-logs")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tickstream-overload-")))
        say(f"starting private embedded Redis and PostgreSQL in {tmp}")
        redis_server, pg_server = start_servers(stack, tmp)
        settings = system_settings(redis_server.url, pg_server.url, opts.max_backlog)
        max_backlog = settings.max_backlog
        max_handoff = max_handoff_ticks(opts.batch, opts.senders, settings.ingest_max_batch)
        bound = backlog_bound(max_backlog, opts.batch, opts.senders, settings.ingest_max_batch)
        keys = Keys.from_settings(settings)
        env = settings_env(settings) | {
            "MAX_BACKLOG": str(max_backlog),
            "INGEST_MAX_BATCH": str(settings.ingest_max_batch),
        }
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
            offer(
                procs.api_url,
                ledger,
                tally,
                tps=target,
                seconds=opts.seconds,
                senders=opts.senders,
                batch=opts.batch,
            )
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
        "machine": {
            "cpus": os.cpu_count(),
            "memory_total": psutil.virtual_memory().total,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run it, print the table; 1 when anything acknowledged was lost, doubled or miscounted."""
    opts = parse_args(argv)
    report = run(opts)
    print()
    print(render(report))
    print(f"\nJSON: {opts.json_path}")
    return 0 if report["correctness"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
