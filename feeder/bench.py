"""`python -m feeder bench`: an honest load generator for a running Tickstream.

Sends a seeded stream at a fixed offered rate (ticks are scheduled on a clock, not sent "as fast
as the last answer allows", so a slow server shows up as latency and backlog instead of hiding
behind a lower rate), and measures for the same ticks:
- ack latency per request (POST → 200),
- ingest → view latency: until a `symbol.updated` event on GET /stream names the tick,
- ingest → Postgres latency, sampled: until the row is visible in md_ticks.
At the end it checks that every accepted tick is in Postgres exactly once (and nothing else of
the run is) and prints a table (or JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import orjson
import psycopg

from backend.settings import Settings
from feeder.simulator import Simulator

BENCH_SYMBOLS = ["BTCUSDT", "ETHUSDT", "XAUUSD", "EURUSD", "AAPL", "SOLUSDT", "MSFT", "NVDA"]
SOURCES = ["binance", "coinbase", "kraken"]
JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class BenchConfig:
    target: str
    tps: float
    duration: float
    symbols: int = 5
    mode: str = "single"
    batch_size: int = 500
    batch_linger_s: float = 0.005
    connections: int = 32
    persist_sample: int = 50  # 1 tick in N is followed into Postgres
    drain_timeout: float = 60.0
    seed: int = 1


@dataclass
class Stats:
    sent_at: dict[str, float] = field(default_factory=dict)  # event_id → monotonic send time
    acked: set[str] = field(default_factory=set)
    # Sent, but no final answer came (the client gave up): the server may or may not have
    # accepted them, so neither their absence nor their presence in Postgres is an error.
    unanswered: set[str] = field(default_factory=set)
    ack_ms: list[float] = field(default_factory=list)
    view_ms: list[float] = field(default_factory=list)
    persist_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    requests: int = 0
    offered: int = 0
    first_send: float = 0.0
    last_ack: float = 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, cfg: BenchConfig, settings: Settings) -> None:
        self.cfg = cfg
        self.settings = settings
        self.run_id = f"bench{uuid.uuid4().hex[:8]}"
        self.stats = Stats()
        self.queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=100_000)
        self.persist_pending: set[str] = set()
        self.done = asyncio.Event()
        self.auth = aiohttp.BasicAuth(
            settings.ingest_username, settings.ingest_password.get_secret_value()
        )

    # --- generation ------------------------------------------------------------------------
    async def produce(self) -> None:
        """Schedule ticks on the clock at the offered rate; batch them for batch mode."""
        rng = random.Random(self.cfg.seed)
        sim = Simulator(BENCH_SYMBOLS[: self.cfg.symbols], SOURCES, rng, run_id=self.run_id)
        total = int(self.cfg.tps * self.cfg.duration)
        start = time.monotonic()
        self.stats.first_send = start
        batch: list[dict[str, Any]] = []
        batch_started = start
        for i in range(total):
            due = start + i / self.cfg.tps
            delay = due - time.monotonic()
            if delay > 0:
                # A batch goes out when full, or when its linger would run out during the wait:
                # being ahead of the clock is no reason to send a small one.
                if batch and due - batch_started >= self.cfg.batch_linger_s:
                    await self._put(batch)
                    batch = []
                await asyncio.sleep(delay)
            tick = sim.next_tick(int(time.time() * 1000))
            # Latencies downstream count from when the tick was DUE, not when a connection got
            # free: a backlog in the client is latency too (no coordinated omission).
            self.stats.sent_at[tick["event_id"]] = due
            self.stats.offered += 1
            if self.cfg.mode == "single":
                await self._put([tick])
                continue
            if not batch:
                batch_started = time.monotonic()
            batch.append(tick)
            if (
                len(batch) >= self.cfg.batch_size
                or time.monotonic() - batch_started >= self.cfg.batch_linger_s
            ):
                await self._put(batch)
                batch = []
        if batch:
            await self._put(batch)
        for _ in range(self.cfg.connections):
            await self.queue.put(None)

    async def _put(self, ticks: list[dict[str, Any]]) -> None:
        await self.queue.put(ticks)

    # --- delivery --------------------------------------------------------------------------
    async def deliver(self, worker: int) -> None:
        """One keep-alive connection; retries keep the same payload (same event_ids).

        aiohttp, not httpx, on this path: a load generator must cost far less than what it
        loads, and at 1,000 single-tick requests/s httpx took most of a core, so the client's
        own queueing showed up as the server's ack and view latency."""
        connector = aiohttp.TCPConnector(limit=1)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(
            base_url=self.cfg.target, auth=self.auth, connector=connector, timeout=timeout
        ) as client:
            while (ticks := await self.queue.get()) is not None:
                await self._send(client, ticks, worker)

    async def _send(
        self, client: aiohttp.ClientSession, ticks: list[dict[str, Any]], worker: int
    ) -> None:
        single = self.cfg.mode == "single"
        body = orjson.dumps(ticks[0] if single else ticks)
        path = "/ingest/tick" if single else "/ingest/ticks"
        sent = time.monotonic()
        for attempt in range(20):
            try:
                async with client.post(path, data=body, headers=JSON_HEADERS) as r:
                    status, answer = r.status, await r.read()
                    retry_after = r.headers.get("retry-after", "0.1")
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.stats.errors[f"network:{type(exc).__name__}"] += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            self.stats.requests += 1
            if status in (429, 503) or status >= 500:
                self.stats.errors[f"http:{status}"] += 1
                await asyncio.sleep(float(retry_after))
                continue
            now = time.monotonic()
            self.stats.ack_ms.append((now - sent) * 1000)
            self.stats.last_ack = now
            if status != 200:
                self.stats.errors[f"http:{status}"] += len(ticks)
                return
            self._record(ticks, orjson.loads(answer))
            return
        self.stats.errors["gave_up"] += len(ticks)
        self.stats.unanswered.update(tick["event_id"] for tick in ticks)

    def _record(self, ticks: list[dict[str, Any]], body: dict[str, Any]) -> None:
        if self.cfg.mode == "single":
            rejected: set[int] = set()
            if body.get("status") == "duplicate":
                self.stats.duplicates += 1
        else:
            rejected = {item["index"] for item in body.get("rejected", [])}
            if rejected:
                self.stats.errors["rejected"] += len(rejected)
            self.stats.duplicates += body.get("duplicates", 0)
        for index, tick in enumerate(ticks):
            if index in rejected:
                continue
            event_id = tick["event_id"]
            self.stats.acked.add(event_id)
            if hash(event_id) % self.cfg.persist_sample == 0:
                self.persist_pending.add(event_id)

    # --- observation -----------------------------------------------------------------------
    async def watch_views(self, ready: asyncio.Event) -> None:
        """Ingest → view: the first symbol.updated whose view names one of our ticks."""
        headers = {}
        if self.settings.api_key is not None:
            headers["x-api-key"] = self.settings.api_key.get_secret_value()
        symbols = ",".join(BENCH_SYMBOLS[: self.cfg.symbols])
        async with (
            # The API's /stream is a 307 to the realtime gateway: follow it there.
            httpx.AsyncClient(
                base_url=self.cfg.target, timeout=None, headers=headers, follow_redirects=True
            ) as client,
            # Only views: a dashboard's subscription (the per-tick events would cost the gateway
            # and this client a frame each).
            client.stream(
                "GET", "/stream", params={"symbols": symbols, "types": "symbol.updated"}
            ) as response,
        ):
            ready.set()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or '"symbol.updated"' not in line:
                    continue
                event = orjson.loads(line[6:])
                sent = self.stats.sent_at.get(event["view"]["last_event_id"])
                if sent is not None:
                    self.stats.view_ms.append((time.monotonic() - sent) * 1000)

    async def watch_postgres(self) -> None:
        """Ingest → Postgres for the sampled ticks, polled every 50 ms."""
        async with await psycopg.AsyncConnection.connect(
            self.settings.psycopg_url, autocommit=True
        ) as conn:
            while not (self.done.is_set() and not self.persist_pending):
                pending = list(self.persist_pending)
                if pending:
                    cur = await conn.execute(
                        "SELECT event_id FROM md_ticks WHERE event_id = ANY(%s)", (pending,)
                    )
                    now = time.monotonic()
                    for (event_id,) in await cur.fetchall():
                        self.persist_pending.discard(event_id)
                        self.stats.persist_ms.append((now - self.stats.sent_at[event_id]) * 1000)
                await asyncio.sleep(0.05)

    async def verify(self) -> dict[str, Any]:
        """Every accepted tick of this run in Postgres, exactly once, and nothing else."""
        deadline = time.monotonic() + self.cfg.drain_timeout
        async with await psycopg.AsyncConnection.connect(
            self.settings.psycopg_url, autocommit=True
        ) as conn:
            while True:
                cur = await conn.execute(
                    "SELECT count(*), count(DISTINCT event_id) FROM md_ticks "
                    "WHERE event_id LIKE %s",
                    (f"{self.run_id}-%",),
                )
                rows, distinct = await cur.fetchone()  # type: ignore[misc]
                # The count alone is not enough: unanswered ticks the server did accept count
                # too, so it can reach the acked count before every acked tick is stored.
                if rows >= len(self.stats.acked):
                    stored = await self._stored(conn)
                    if self.stats.acked <= stored:
                        break
                if time.monotonic() > deadline:
                    stored = await self._stored(conn)
                    break
                await asyncio.sleep(0.2)
            converged = time.monotonic() - self.stats.last_ack
        missing = len(self.stats.acked - stored)
        extra = len(stored - self.stats.acked - self.stats.unanswered)
        return {
            "stored": rows,
            "missing": missing,
            "extra": extra,
            "unanswered": len(self.stats.unanswered),
            "duplicated": rows - distinct,
            "exactly_once": missing == 0 and extra == 0 and rows == distinct,
            "drain_s": round(converged, 2),
        }

    async def _stored(self, conn: psycopg.AsyncConnection[Any]) -> set[str]:
        cur = await conn.execute(
            "SELECT event_id FROM md_ticks WHERE event_id LIKE %s", (f"{self.run_id}-%",)
        )
        return {r[0] for r in await cur.fetchall()}

    async def run(self, progress: Any = None) -> dict[str, Any]:
        ready = asyncio.Event()
        views = asyncio.create_task(self.watch_views(ready))
        await asyncio.wait_for(ready.wait(), 10)
        persist = asyncio.create_task(self.watch_postgres())
        producer = asyncio.create_task(self.produce())
        workers = [asyncio.create_task(self.deliver(i)) for i in range(self.cfg.connections)]
        while not producer.done() or any(not w.done() for w in workers):
            if progress is not None:
                progress(self.stats.offered, len(self.stats.acked))
            await asyncio.sleep(0.25)
        await producer
        await asyncio.gather(*workers)
        elapsed = self.stats.last_ack - self.stats.first_send
        verification = await self.verify()
        self.done.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(persist, 5)
        views.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await views
        return self.report(elapsed, verification)

    def report(self, elapsed: float, verification: dict[str, Any]) -> dict[str, Any]:
        def dist(values: list[float]) -> dict[str, float | None]:
            return {f"p{int(q * 100)}": percentile(values, q) for q in (0.5, 0.95, 0.99)} | {
                "n": len(values)
            }

        accepted = len(self.stats.acked)
        return {
            "mode": self.cfg.mode,
            "symbols": self.cfg.symbols,
            "offered_tps": self.cfg.tps,
            "duration_s": self.cfg.duration,
            "offered": self.stats.offered,
            "accepted": accepted,
            "achieved_tps": accepted / elapsed if elapsed > 0 else 0.0,
            "requests": self.stats.requests,
            "duplicates": self.stats.duplicates,
            "ack_ms": dist(self.stats.ack_ms),
            "view_ms": dist(self.stats.view_ms),
            "persist_ms": dist(self.stats.persist_ms),
            "errors": dict(self.stats.errors),
            "verification": verification,
            "run_id": self.run_id,
        }


def format_table(result: dict[str, Any]) -> str:
    def fmt(d: dict[str, Any]) -> str:
        parts = [f"{d[k]:.1f}" if d[k] is not None else "-" for k in ("p50", "p95", "p99")]
        return " / ".join(parts) + f"  (n={d['n']})"

    v = result["verification"]
    rows = [
        ("mode", f"{result['mode']}  ({result['symbols']} symbols, {result['duration_s']:.0f} s)"),
        ("offered ticks/s", f"{result['offered_tps']:,.0f}  ({result['offered']:,} ticks)"),
        ("achieved ticks/s", f"{result['achieved_tps']:,.0f}  ({result['accepted']:,} accepted)"),
        ("ack ms p50/p95/p99", fmt(result["ack_ms"])),
        ("view ms p50/p95/p99", fmt(result["view_ms"])),
        ("persist ms p50/p95/p99", fmt(result["persist_ms"])),
        ("errors", ", ".join(f"{k}={n}" for k, n in result["errors"].items()) or "none"),
        (
            "exactly once in Postgres",
            f"{'YES' if v['exactly_once'] else 'NO'}: stored {v['stored']:,}, "
            f"missing {v['missing']}, extra {v['extra']}, duplicated {v['duplicated']}, "
            f"drained {v['drain_s']} s after the last ack",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {val}" for k, val in rows)
