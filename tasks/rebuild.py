"""Rebuild symbols' live calc state, window, view and gaps from PostgreSQL + the outbox, exactly,
while ingest and calc keep running.

Per symbol: fence it (calc then buffers instead of merging), read R = the outbox's ticks, then
every stored tick (server-side cursor, (ts, event_id) order), merge R chunk by chunk into a fresh
state with the pure `merge` (an in-memory window store: fed in time order it only ever holds the
60 s window), then swap it in (`RebuildStore.swap`): merge the fence's buffer B minus R, record
the skip set D = Pend ∩ (R ∪ B), replace state + window + view and lift the fence in one MULTI.
backend/bus/rebuild_store.py and docs/services/rebuild.md say why no tick is lost or counted twice.

Entry points: the `rebuild_symbols` actor (queue `rebuilds`, in the worker service: calc's
auto-trigger and POST /admin/rebuild send it), and `python -m tasks.rebuild [--symbols A,B]`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from redis import Redis

from backend.bus import ledger
from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.bus.rebuild_store import FenceGone, RebuildStore, Rebuilt, SwapInput
from backend.core.rebuild import RebuildStatus, not_in, pending_duplicates
from backend.core.ticks import SYMBOL_RE, Tick, us_to_iso
from backend.core.view import build_view
from backend.core.window import ListStore, WindowState, merge
from backend.settings import WorkerSettings, get_worker_settings
from backend.storage.ticks_repo import distinct_symbols, iter_symbol_ticks

log = logging.getLogger(__name__)

CHUNK = 5_000  # ticks per merge (and per fetch from the server-side cursor)
MAX_FENCE_RESTARTS = 3  # another rebuild of the same symbol swapping first: start over


@dataclass(frozen=True, slots=True)
class SymbolRebuild:
    symbol: str
    ticks_read: int  # |R|: outbox + md_ticks, each event id once
    buffered: int  # |B minus R|: ticks calc buffered in the fence that R did not have
    skipped: int  # |D|: ticks of pending messages the new state already counts
    seconds: float
    swap_attempts: int


@dataclass(frozen=True, slots=True)
class RebuildReport:
    symbols: list[SymbolRebuild] = field(default_factory=list)

    @property
    def ticks_read(self) -> int:
        return sum(s.ticks_read for s in self.symbols)


@dataclass(slots=True)
class DurableRead:
    """R merged so far: the state, its window's ticks and every event id read."""

    state: WindowState
    store: ListStore
    ids: set[str]

    def add(self, ticks: list[Tick], now_us: int) -> None:
        fresh = not_in(ticks, self.ids)
        if not fresh:
            return
        self.ids.update(t.event_id for t in fresh)
        self.state, delta, _ = merge(self.state, self.store, fresh, now_us)
        self.store.apply(delta)


def rebuilt_state(
    read: DurableRead, swap_read: SwapInput, now_us: int, stale_after_s: float
) -> Rebuilt:
    """What the swap puts in place: R's state with B minus R merged in, its window, its view,
    and the skip set D = Pend ∩ (R ∪ B). Computed again on every swap attempt (B and Pend are
    read again), from R's state, which is never changed."""
    extra = not_in(swap_read.buffered, read.ids)  # B minus R
    state, store = read.state, ListStore()
    store.entries = list(read.store.entries)
    if extra:
        state, delta, _ = merge(state, store, extra, now_us)
        store.apply(delta)
    skip = pending_duplicates(swap_read.pending, read.ids, (t.event_id for t in swap_read.buffered))
    state = replace(state, skip=skip)
    return Rebuilt(state, store.entries, build_view(state, now_us, stale_after_s))


Clock = Callable[[], int]


def _wall_us() -> int:
    return time.time_ns() // 1_000


@dataclass(frozen=True)
class Rebuilder:
    redis: Redis
    keys: Keys
    ring: Ring
    pg_conninfo: str
    calc_queue: str
    stale_after_s: float
    clock_us: Clock = _wall_us

    @classmethod
    def from_settings(cls, settings: WorkerSettings, redis: Redis | None = None) -> Rebuilder:
        return cls(
            redis=redis or Redis.from_url(settings.effective_redis_url, health_check_interval=30),
            keys=Keys.from_settings(settings),
            ring=Ring.from_settings(settings),
            pg_conninfo=settings.psycopg_url,
            calc_queue=settings.queue_name,
            stale_after_s=settings.stale_after,
        )

    @property
    def store(self) -> RebuildStore:
        return RebuildStore(self.redis, self.keys, self.ring)

    def all_symbols(self, conn: psycopg.Connection[Any]) -> list[str]:
        """Every symbol: the symbols hash ∪ the view-order hash ∪ md_ticks' distinct symbols."""
        return sorted(self.store.known_symbols() | set(distinct_symbols(conn)))

    def rebuild(
        self, symbols: list[str] | None, progress: Callable[[SymbolRebuild], None] | None = None
    ) -> RebuildReport:
        done: list[SymbolRebuild] = []
        # autocommit: nothing idles in a transaction between symbols; each symbol's read is its
        # own transaction (`iter_symbol_ticks`), one statement, so one snapshot.
        with psycopg.connect(self.pg_conninfo, connect_timeout=10, autocommit=True) as conn:
            for symbol in self.all_symbols(conn) if symbols is None else symbols:
                result = self.rebuild_symbol(conn, symbol)
                done.append(result)
                if progress is not None:
                    progress(result)
        return RebuildReport(done)

    def rebuild_symbol(self, conn: psycopg.Connection[Any], symbol: str) -> SymbolRebuild:
        store = self.store
        started = time.monotonic()
        started_at = us_to_iso(self.clock_us())
        previous = store.status(symbol)
        status = RebuildStatus(
            symbol=symbol, phase="fenced", started_at=started_at,
            queued_at=previous.queued_at if previous and previous.phase == "queued" else None,
        )  # fmt: skip
        try:
            for restart in range(MAX_FENCE_RESTARTS + 1):
                # The fence first: from here on calc buffers, so the old state only holds
                # ticks accepted before this moment, all of which R below will read.
                stamp = store.open_fence(symbol, self.clock_us())
                store.put_status(status, {ledger.REBUILDS_STARTED: 1} if restart == 0 else None)
                read = self.read_durable(conn, symbol, status)
                try:
                    return self._swap(symbol, read, stamp, status, started)
                except FenceGone:
                    log.info("rebuild %s: fence lifted by another rebuild; starting over", symbol)
            raise RuntimeError(f"rebuild of {symbol}: fence kept disappearing")
        except Exception as exc:
            store.put_status(
                status.model_copy(update={"phase": "failed", "error": repr(exc)[:500],
                                          "finished_at": us_to_iso(self.clock_us())})
            )  # fmt: skip
            raise

    def read_durable(
        self, conn: psycopg.Connection[Any], symbol: str, status: RebuildStatus
    ) -> DurableRead:
        """R: the outbox FIRST, then md_ticks. A tick missing from the outbox when it was read
        had been committed to PostgreSQL (the flusher deletes only after its commit), so the
        md_ticks statement, which starts later, sees it."""
        now = self.clock_us()
        outbox = self.store.outbox_ticks(symbol)
        read = DurableRead(WindowState(symbol=symbol), ListStore(), set())
        for i, chunk in enumerate(iter_symbol_ticks(conn, symbol, CHUNK), start=1):
            read.add(chunk, now)
            if i % 20 == 0:  # now and then: a live figure for GET /admin/rebuild
                self.store.put_status(
                    status.model_copy(update={"phase": "rebuilding", "ticks_read": len(read.ids)})
                )
        read.add(sorted(outbox, key=lambda t: (t.ts_us, t.event_id)), now)
        return read

    def _swap(
        self,
        symbol: str,
        read: DurableRead,
        stamp: bytes,
        status: RebuildStatus,
        started: float,
    ) -> SymbolRebuild:
        now = self.clock_us()

        def rebuilt(swap_read: SwapInput) -> Rebuilt:
            return rebuilt_state(read, swap_read, now, self.stale_after_s)

        def done(result: Rebuilt, swap_read: SwapInput) -> RebuildStatus:
            return status.model_copy(
                update={
                    "phase": "done", "ticks_read": len(read.ids),
                    "buffered": len(not_in(swap_read.buffered, read.ids)),
                    "skipped": len(result.state.skip), "finished_at": us_to_iso(self.clock_us()),
                    "seconds": round(time.monotonic() - started, 3),
                }
            )  # fmt: skip

        result, swap_read, attempts = self.store.swap(
            symbol, rebuilt, stamp=stamp, now_us=now, calc_queue=self.calc_queue, status=done,
            counters={ledger.REBUILDS_FINISHED: 1, ledger.REBUILD_TICKS_READ: len(read.ids)},
        )  # fmt: skip
        report = SymbolRebuild(
            symbol=symbol, ticks_read=len(read.ids),
            buffered=len(not_in(swap_read.buffered, read.ids)), skipped=len(result.state.skip),
            seconds=round(time.monotonic() - started, 3), swap_attempts=attempts,
        )  # fmt: skip
        log.info(
            "rebuild %s: %d ticks read, %d buffered, %d skipped, %.3fs (%d swap attempts)",
            symbol, report.ticks_read, report.buffered, report.skipped, report.seconds, attempts,
            extra={"symbol": symbol, "ticks_read": report.ticks_read},
        )  # fmt: skip
        return report


def rebuild_symbols(
    settings: WorkerSettings,
    symbols: list[str] | None,
    *,
    redis: Redis | None = None,
    progress: Callable[[SymbolRebuild], None] | None = None,
) -> RebuildReport:
    """Rebuild `symbols` (None: every symbol Redis or PostgreSQL knows), one after the other."""
    return Rebuilder.from_settings(settings, redis).rebuild(symbols, progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.rebuild",
        description="Rebuild calc state, windows, views and gaps from PostgreSQL + the outbox.",
    )
    parser.add_argument("--symbols", help="comma-separated symbols (default: every symbol)")
    args = parser.parse_args(argv)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    bad = [s for s in symbols or () if not SYMBOL_RE.match(s)]
    if bad:
        parser.error(f"--symbols: invalid {bad[:5]} (must match {SYMBOL_RE.pattern})")
    settings = get_worker_settings()
    logging.basicConfig(level=logging.WARNING)

    def progress(r: SymbolRebuild) -> None:
        print(
            f"{r.symbol}: {r.ticks_read} ticks read, {r.buffered} buffered, "
            f"{r.skipped} skipped, {r.seconds:.3f}s",
            flush=True,
        )

    report = rebuild_symbols(settings, symbols, progress=progress)
    print(f"rebuilt {len(report.symbols)} symbols, {report.ticks_read} ticks read", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
