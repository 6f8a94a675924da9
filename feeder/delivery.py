"""Getting ticks to the API: a bounded local buffer, then one request per tick or batches.

The pacing loop only ever `submit`s (never waits on the network), so a slow or dead API cannot
stall tick generation. Ticks wait in a bounded buffer; when it is full the oldest is dropped and
counted (`dropped`), so a long outage costs the oldest ticks, never unbounded memory or a
crash. Requests retry network errors / 5xx / 429 with the same bytes until answered, so when
the API comes back the buffer drains in order of arrival.

Modes (switchable at runtime): `single` posts each tick (`/ingest/tick`) with up to
`max_in_flight` requests at once; `batch` posts `/ingest/ticks` with up to `batch_max` ticks,
flushed when that many are waiting or `batch_linger` seconds after the first one, whichever
comes first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

import orjson

from feeder.client import TickClient
from feeder.clock import SYSTEM_CLOCK, Clock, sleep_until_woken
from feeder.outcomes import Counters, Outcome

log = logging.getLogger(__name__)

Mode = Literal["single", "batch"]
BUFFER_MAX = 100_000
BATCH_MAX = 500
BATCH_LINGER_S = 0.005
MAX_IN_FLIGHT = 64
MAX_BATCHES_IN_FLIGHT = 4
CLOSE_POLL_S = 0.05  # close() re-checks its deadlines at least this often


class Item(NamedTuple):
    """One encoded tick: the exact bytes every attempt sends."""

    body: bytes
    event_id: str
    bad: bool


class Recorder:
    """Appends `{"event_id", "outcome"}` lines (JSONL) for each tick answered; optional."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("ab")

    def write(self, event_id: str, outcome: Outcome) -> None:
        self._file.write(orjson.dumps({"event_id": event_id, "outcome": outcome.value}) + b"\n")

    def write_summary(self, counters: Counters) -> None:
        self._file.write(orjson.dumps({"counters": counters.snapshot().__dict__}) + b"\n")

    def close(self) -> None:
        self._file.close()


class Delivery:
    """Buffer + dispatcher over a `TickClient`; `start()`, `submit()`..., then `close()`."""

    def __init__(
        self,
        client: TickClient,
        *,
        mode: Mode = "single",
        buffer_max: int = BUFFER_MAX,
        max_in_flight: int = MAX_IN_FLIGHT,
        batch_max: int = BATCH_MAX,
        batch_linger: float = BATCH_LINGER_S,
        max_batches_in_flight: int = MAX_BATCHES_IN_FLIGHT,
        recorder: Recorder | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if min(buffer_max, max_in_flight, batch_max, max_batches_in_flight) < 1:
            raise ValueError("buffer_max, max_in_flight, batch_max and batches must be >= 1")
        self.client = client
        self.mode: Mode = mode
        self.buffer_max = buffer_max
        self.max_in_flight = max_in_flight
        self.batch_max = batch_max
        self.batch_linger = batch_linger
        self.max_batches_in_flight = max_batches_in_flight
        self.recorder = recorder
        self.clock = clock  # the batch linger and close()'s deadlines run on it
        self._buffer: deque[Item] = deque()
        self._in_flight_ticks = 0
        self._requests: dict[asyncio.Task[None], int] = {}  # request -> its tick count
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()  # a whole batch is waiting
        self._slot_freed = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._dropped_logged_at = -float("inf")

    @property
    def counters(self) -> Counters:
        return self.client.counters

    @property
    def waiting(self) -> int:
        """Ticks in the buffer, not yet sent."""
        return len(self._buffer)

    @property
    def buffered(self) -> int:
        """Ticks held locally and not yet answered: waiting plus in flight."""
        return len(self._buffer) + self._in_flight_ticks

    def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="feeder-dispatch")

    def submit(self, payload: dict[str, Any], *, bad: bool = False) -> None:
        """Queue one tick for sending; never blocks. A full buffer drops its oldest tick."""
        # Right-sized copy: orjson >= 3.12 returns page-sized allocations even for a small tick,
        # which would make a full buffer cost an order of magnitude more memory.
        body = bytes(memoryview(orjson.dumps(payload)))
        item = Item(body, str(payload.get("event_id", "")), bad)
        if len(self._buffer) >= self.buffer_max:
            self._buffer.popleft()
            self.counters.dropped += 1
            self._warn_dropped()
        self._buffer.append(item)
        self._has_items.set()
        if len(self._buffer) >= self.batch_max:
            self._full.set()

    async def close(self, timeout: float = 30.0, stall: float = 5.0) -> None:
        """Send what is buffered, then stop; leftovers count as dropped.

        Gives up after `timeout` s, or after `stall` s without a single answer (the API is
        gone: waiting longer would only delay shutdown).
        """
        now = self.clock.monotonic()
        deadline, answered, progress_at = now + timeout, self.counters.answered, now
        while self.buffered and self._dispatcher is not None:
            now = self.clock.monotonic()
            if self.counters.answered != answered:
                answered, progress_at = self.counters.answered, now
            if now >= deadline or now - progress_at >= stall:
                break
            self._slot_freed.clear()
            await sleep_until_woken(self.clock, CLOSE_POLL_S, self._slot_freed)
        await self.abort()

    async def abort(self) -> None:
        """Stop at once: in-flight requests are cancelled, buffered ticks dropped (counted)."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        pending = list(self._requests)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._buffer:
            log.warning("stopping with %d unsent ticks: dropped", len(self._buffer))
            self.counters.dropped += len(self._buffer)
            self._buffer.clear()

    # --- dispatch -------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            if not self._buffer:
                self._has_items.clear()
                await self._has_items.wait()
                continue
            if self.mode == "batch":
                if len(self._buffer) < self.batch_max:
                    self._full.clear()
                    await sleep_until_woken(self.clock, self.batch_linger, self._full)
                await self._free_slot(self.max_batches_in_flight)
                take = min(self.batch_max, len(self._buffer))
                self._launch([self._buffer.popleft() for _ in range(take)])
            else:
                await self._free_slot(self.max_in_flight)
                if self._buffer:
                    self._launch([self._buffer.popleft()])

    async def _free_slot(self, limit: int) -> None:
        while len(self._requests) >= limit:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    def _launch(self, items: list[Item]) -> None:
        if not items:
            return
        self._in_flight_ticks += len(items)
        task = asyncio.create_task(self._send(items, single=self.mode == "single"))
        self._requests[task] = len(items)
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        ticks = self._requests.pop(task, 0)
        self._in_flight_ticks -= ticks
        if task.cancelled():
            self.counters.dropped += ticks  # abandoned at a forced stop: never answered
        self._slot_freed.set()

    async def _send(self, items: list[Item], *, single: bool) -> None:
        try:
            if single:
                outcomes = [await self.client.send(items[0].body, bad=items[0].bad)]
            else:
                outcomes = await self.client.send_batch(
                    [item.body for item in items], [item.bad for item in items]
                )
        except Exception:  # a bug must cost these ticks, never the feed
            self.counters.errors += len(items)
            log.exception("unexpected error delivering %d tick(s)", len(items))
            return
        self._record(items, outcomes)

    def _record(self, items: list[Item], outcomes: list[Outcome]) -> None:
        if self.recorder is not None:
            for item, outcome in zip(items, outcomes, strict=True):
                self.recorder.write(item.event_id, outcome)

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._dropped_logged_at >= 10.0:
            self._dropped_logged_at = now
            log.warning(
                "buffer full (%d ticks; API unreachable or too slow?): dropping the oldest, "
                "%d dropped so far",
                self.buffer_max,
                self.counters.dropped,
            )
