"""One connected client: what it follows, where it is in the ring, and its queue.

The hub offers it events in ring order; the client keeps those it follows in its bounded queue
(`ClientQueue`) and wakes its writer. `cursor` is the last ring id it has been given or covered
(by a snapshot): nothing at or before it is offered again, so a client that catches up from the
ring and then joins the live fan-out never gets an event twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

from backend.core.stream_ids import StreamId
from backend.gateway.client_queue import ClientQueue, DropRange, Queued
from backend.gateway.frames import Control, Event

Transport = Literal["sse", "ws"]


@dataclass(eq=False)
class Client:
    number: int
    transport: Transport
    remote: str
    symbols: frozenset[str] | None  # None: every symbol
    types: frozenset[str] | None  # None: every event type
    capacity: int
    queue: ClientQueue = field(init=False)
    cursor: StreamId = (0, 0)
    live: bool = False  # in the hub's fan-out (False while it starts or catches up)
    delivered: int = 0
    missed_reports: int = 0
    coalesced_reported: int = 0  # how much of queue.coalesced is already in the metrics
    connected_at: float = field(default_factory=time.time)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # something to write
    drained: asyncio.Event = field(default_factory=asyncio.Event)  # the writer took the queue
    went_live: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.queue = ClientQueue(self.capacity)

    def offer(self, event: Event) -> None:
        """The next event of the ring (the hub's, or the catch-up's)."""
        if event.id <= self.cursor:
            return
        self.cursor = event.id
        types, symbols = self.types, self.symbols
        if (types is None or event.type in types) and (symbols is None or event.symbol in symbols):
            self.queue.offer(event)
            if not self.ready.is_set():
                self.ready.set()

    def pin(self, control: Control) -> None:
        """A snapshot or a reset: never dropped; a snapshot at `id` covers every event before."""
        self.queue.pin(control)
        if control.id is not None and control.id > self.cursor:
            self.cursor = control.id
        self.ready.set()

    def take(self) -> tuple[DropRange | None, list[Queued]]:
        """What the writer sends now; wakes a catch-up waiting for room."""
        self.ready.clear()
        dropped, items = self.queue.take()
        self.drained.set()
        self.delivered += len(items)
        if dropped is not None:
            self.missed_reports += 1
        return dropped, items

    def info(self) -> dict[str, object]:
        """For GET /clients: who it is and how it is doing."""
        return {
            "id": self.number,
            "transport": self.transport,
            "remote": self.remote,
            "symbols": sorted(self.symbols) if self.symbols is not None else None,
            "types": sorted(self.types) if self.types is not None else None,
            "live": self.live,
            "cursor": f"{self.cursor[0]}-{self.cursor[1]}",
            "queued": len(self.queue),
            "delivered": self.delivered,
            "coalesced": self.queue.coalesced,
            "dropped": self.queue.dropped,
            "missed_reports": self.missed_reports,
            "connected_at": self.connected_at,
        }
