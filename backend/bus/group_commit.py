"""Group commit: many requests share one Redis round trip and one Dramatiq message.

A request hands its ticks to `submit()` and waits. A single flusher task takes everything waiting
(after lingering a few ms when the queue was empty, so concurrent requests can join) and runs one
ingest script for all of it. While that round trip is in flight the next group accumulates, so
under load batches grow by themselves and latency stays at about one round trip plus the linger.
A request's future resolves only after its ticks are safely in Redis.

Each request's trace id travels with its ticks: the flush gets `(trace id, ticks)` per request,
in the ticks' order, and the ingest script stores each distinct id once with the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from backend.bus.ingest import Outcome
from backend.core.ticks import Tick

log = logging.getLogger(__name__)

TraceSpans = Sequence[tuple[str, int]]  # (trace id, how many of the ticks) per request, in order
FlushFn = Callable[[Sequence[Tick], TraceSpans], Awaitable[list[Outcome]]]
AfterFlushFn = Callable[[Sequence[Tick], list[Outcome]], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    ticks: Sequence[Tick]
    future: asyncio.Future[list[Outcome]]
    trace_id: str


@dataclass
class GroupCommitter:
    flush: FlushFn
    linger_s: float = 0.002
    max_batch: int = 2_000
    after_flush: AfterFlushFn | None = None
    _queue: deque[_Pending] = field(default_factory=deque)
    _wakeup: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    _queued_ticks: int = 0

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Flush what is waiting, then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        while self._queue:
            await self._flush_once()

    async def submit(self, ticks: Sequence[Tick], trace_id: str = "") -> list[Outcome]:
        """Hand `ticks` (one request's, sharing `trace_id`) to the next group commit."""
        if self._wakeup is None or self._task is None:
            raise RuntimeError("GroupCommitter is not started")
        if not ticks:
            return []
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(ticks, future, trace_id))
        self._queued_ticks += len(ticks)
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            if self.linger_s > 0 and self._queued_ticks < self.max_batch:
                await asyncio.sleep(self.linger_s)
            while self._queue:
                await self._flush_once()
            self._wakeup.clear()

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        count = 0
        while self._queue and (not taken or count + len(self._queue[0].ticks) <= self.max_batch):
            item = self._queue.popleft()
            taken.append(item)
            count += len(item.ticks)
        self._queued_ticks -= count
        return taken

    async def _flush_once(self) -> None:
        group = self._take()
        ticks = [tick for item in group for tick in item.ticks]
        spans = [(item.trace_id, len(item.ticks)) for item in group]  # "" = untraced
        try:
            outcomes = await self.flush(ticks, spans)
        except Exception as exc:  # every waiter learns the hand-off failed; none is acked
            for item in group:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        start = 0
        for item in group:
            end = start + len(item.ticks)
            if not item.future.done():
                item.future.set_result(outcomes[start:end])
            start = end
        if self.after_flush is not None:
            try:
                await self.after_flush(ticks, outcomes)
            except Exception:  # the fast-path event is best effort; the ticks are safe already
                log.warning("after-flush hook failed", exc_info=True)
