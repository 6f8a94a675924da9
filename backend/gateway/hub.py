"""The gateway's one reader of the ring, and the fan-out to its live clients.

The hub reads the ring with XREAD BLOCK from where it is, keeps the latest view of every symbol
(from the atomic tail it started from, then from each `symbol.updated`), and offers each event to
the live clients that follow its symbol. Everything it changes (position, views, clients) changes
between two awaits, so a snapshot taken from it is exactly the state at `position`, and a client
attached at that moment gets every later event and no earlier one.

If it loses its place (Redis restarted with another ring, or trimmed past it while it was cut
off) it starts again from a fresh tail and resets every live client: a `reset`, then a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import orjson

from backend.bus.realtime import Entry, RingReader
from backend.core.events import SYMBOL_UPDATED
from backend.core.realtime import RESET, SNAPSHOT, Reset
from backend.core.stream_ids import StreamId, decide_resume, format_id
from backend.gateway.client import Client
from backend.gateway.frames import Control, Event
from backend.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

Sleeper = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class CachedView:
    """A symbol's latest view: as the stored JSON, or inside its `symbol.updated` event."""

    view: bytes | None = None
    event: bytes | None = None

    def view_json(self) -> bytes | None:
        if self.view is None and self.event is not None:
            view = orjson.loads(self.event).get("view")
            self.view = orjson.dumps(view) if isinstance(view, dict) else None
            self.event = None
        return self.view


class Hub:
    def __init__(
        self,
        reader: RingReader,
        metrics: GatewayMetrics,
        *,
        retention_s: float,
        block_ms: int = 5_000,
        batch: int = 1_000,
        trim_every_s: float = 5.0,
        sleep: Sleeper = asyncio.sleep,
    ) -> None:
        self.reader = reader
        self.metrics = metrics
        self.retention_s = retention_s
        self._block_ms = block_ms
        self._batch = batch
        self._trim_every_s = trim_every_s
        self._sleep = sleep
        self.position: StreamId | None = None  # last ring id applied; None until the first tail
        self.epoch = 0  # grows each time the hub starts again from a fresh tail
        self.views: dict[str, CachedView] = {}
        self.connected = False
        self.last_error: str | None = None
        self.clients: dict[int, Client] = {}  # every connection, live or not
        self._all: set[Client] = set()  # live, following every symbol
        self._by_symbol: dict[str, set[Client]] = {}  # live, by symbol followed
        self._tasks: list[asyncio.Task[None]] = []
        self._next_number = 0
        self._became_ready = asyncio.Event()

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="gateway-hub"),
            asyncio.create_task(self._trim_loop(), name="gateway-trim"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def ready(self) -> bool:
        """Connected to the ring, with a position to start clients from."""
        return self.connected and self.position is not None

    async def wait_ready(self, timeout: float) -> bool:
        """Until the hub is first ready, for at most `timeout` seconds; whether it is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._became_ready.wait()
        return self.ready

    # --- clients ----------------------------------------------------------------------------
    def register(self, client_factory: Callable[[int], Client]) -> Client:
        self._next_number += 1
        client = client_factory(self._next_number)
        self.clients[client.number] = client
        self.metrics.clients.labels(client.transport).inc()
        return client

    def unregister(self, client: Client) -> None:
        self.detach(client)
        if self.clients.pop(client.number, None) is not None:
            self.metrics.clients.labels(client.transport).dec()

    def attach(self, client: Client) -> None:
        """Into the live fan-out: from now on it is offered every event after its cursor."""
        if client.symbols is None:
            self._all.add(client)
        else:
            for symbol in client.symbols:
                self._by_symbol.setdefault(symbol, set()).add(client)
        client.live = True
        client.went_live.set()

    def detach(self, client: Client) -> None:
        self._all.discard(client)
        for symbol in client.symbols or ():
            followers = self._by_symbol.get(symbol)
            if followers is not None:
                followers.discard(client)
                if not followers:
                    del self._by_symbol[symbol]
        client.live = False
        client.went_live.clear()

    def follow(self, client: Client, symbols: frozenset[str] | None) -> frozenset[str] | None:
        """Change what a live client follows; the symbols it newly follows (None: all), whose
        snapshot the caller sends (`snapshot_of`) before any later event of theirs."""
        before = client.symbols
        self.detach(client)
        client.symbols = symbols
        self.attach(client)
        if symbols is None:
            return None if before is not None else frozenset()
        return symbols - before if before is not None else frozenset()

    def start_from_snapshot(self, client: Client) -> None:
        """Snapshot of what the client follows at the hub's position, then live. No await."""
        assert self.position is not None
        client.pin(self.snapshot_of(client.symbols))
        self.attach(client)

    def snapshot_of(self, symbols: Iterable[str] | None) -> Control:
        """A `snapshot` message of the cached views (all when `symbols` is None), at `position`."""
        assert self.position is not None
        wanted = self.views.keys() if symbols is None else symbols
        parts = []
        for symbol in sorted(wanted):
            cached = self.views.get(symbol)
            view = cached.view_json() if cached is not None else None
            if view is not None:
                parts.append(orjson.dumps(symbol) + b":" + view)
        at = format_id(self.position)
        data = b'{"at":"' + at.encode() + b'","views":{' + b",".join(parts) + b"}}"
        return Control(SNAPSHOT, data, self.position, at)

    # --- the ring ---------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if self.position is None:
                    await self._load_tail()
                else:
                    await self._check_place()
                self._set_connected(True)
                backoff = 0.2
                while True:
                    entries = await self.reader.read_live(
                        self.position, self._batch, self._block_ms
                    )  # type: ignore[arg-type]
                    self.apply(entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis lost, or anything else: retry, never die
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.connected:
                    log.warning("gateway: ring reader lost (%s); retrying", self.last_error)
                elif self.position is None and backoff == 0.2:  # never started: say so once
                    log.warning("gateway: cannot read the ring yet (%s); retrying", self.last_error)
                self._set_connected(False)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def apply(self, entries: list[Entry]) -> None:
        """Fan out a batch read from the ring (no await: one consistent step)."""
        for entry in entries:
            event = Event(entry)
            symbol = event.symbol
            if event.type == SYMBOL_UPDATED and symbol is not None:
                cached = self.views.get(symbol)
                if cached is None:
                    self.views[symbol] = CachedView(event=event.payload)
                else:
                    cached.view, cached.event = None, event.payload
            for client in self._all:
                client.offer(event)
            if symbol is not None:
                for client in self._by_symbol.get(symbol, ()):
                    client.offer(event)
            self.position = event.id
        if entries:
            self.metrics.ring_events.inc(len(entries))

    async def _load_tail(self) -> None:
        tail = await self.reader.tail()
        self.views = {symbol: CachedView(view=view) for symbol, view in tail.views.items()}
        self.position = tail.last_id
        self.epoch += 1

    async def _check_place(self) -> None:
        """After a reconnect: is the ring still continuous after our position? Else start over."""
        assert self.position is not None
        bounds, _ = await self.reader.read_after(self.position, 1)
        decision = decide_resume(self.position, bounds.first, bounds.last_generated)
        if decision.verdict == "resume":
            return
        lost = format_id(self.position)
        log.warning("gateway: lost its place in the ring at %s (%s)", lost, decision.reason)
        self.metrics.resyncs.inc()
        await self._load_tail()
        for client in list(self.clients.values()):
            if client.live:
                self.detach(client)
                client.queue.clear()
                client.cursor = (0, 0)
                client.pin(Control.of(RESET, Reset(after=lost, reason=decision.reason)))
                self.start_from_snapshot(client)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.metrics.ring_connected.set(1 if connected else 0)
        if self.ready:
            self._became_ready.set()

    async def _trim_loop(self) -> None:
        """Every replica trims the ring by age (idempotent): how far back a client can resume."""
        while True:
            await self._sleep(self._trim_every_s)
            try:
                await self.reader.trim(self.retention_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("gateway: trim failed (%s)", exc)
