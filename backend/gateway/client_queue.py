"""A client's bounded queue: the latest view of every symbol, and the other events oldest-first.

A slow client must get the newest state, not an arbitrary prefix of history. So a `symbol.updated`
replaces the queued view of its symbol (coalesced: a view is the whole W, the older one adds
nothing), and when the queue is full the oldest other event is dropped and reported as a
`missed` range. Pure: no I/O, no clock, tested on its own.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Protocol

from backend.core.events import SYMBOL_UPDATED
from backend.core.stream_ids import StreamId, format_id


class Queued(Protocol):
    id: StreamId | None
    id_text: str | None
    type: str
    symbol: str | None


@dataclass(slots=True)
class DropRange:
    """What was dropped since the last take: ids from `first_id` to `last_id`, `count` of them."""

    first_id: StreamId
    last_id: StreamId
    count: int

    @property
    def first(self) -> str:
        return format_id(self.first_id)

    @property
    def last(self) -> str:
        return format_id(self.last_id)


def _order(item: Queued) -> tuple[int, int]:
    return item.id if item.id is not None else (0, 0)


class ClientQueue:
    """At most `capacity` events; views coalesce per symbol, other events drop oldest-first.

    Messages of the gateway's own (`pin`: a snapshot, a reset) are never dropped nor counted
    against the capacity; they are only ever queued when every queued event is older.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._views: OrderedDict[str, Queued] = OrderedDict()  # by symbol, oldest first
        self._others: deque[Queued] = deque()  # every other event, in ring order
        self._pinned: list[Queued] = []
        self._dropped: DropRange | None = None
        self.coalesced = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._views) + len(self._others)

    def offer(self, item: Queued) -> None:
        # The hot path of a stalled client: it runs for every event the client follows.
        symbol = item.symbol
        if symbol is not None and item.type == SYMBOL_UPDATED:
            views = self._views
            if views.pop(symbol, None) is not None:
                self.coalesced += 1
                views[symbol] = item
                return  # replaced: the queue did not grow
            views[symbol] = item
        else:
            self._others.append(item)
        if len(self._views) + len(self._others) > self.capacity:
            self._drop_oldest()

    def pin(self, item: Queued) -> None:
        """Queue a message that must not be dropped, at its ring position (`id`; one without an
        id goes first: a reset is only ever pinned on an empty queue)."""
        self._pinned.append(item)

    def clear(self) -> None:
        """Forget everything queued (a WebSocket client re-positioned its stream)."""
        self._views.clear()
        self._others.clear()
        self._pinned.clear()
        self._dropped = None

    def take(self) -> tuple[DropRange | None, list[Queued]]:
        """Everything queued, in ring order, and what was dropped since the last take."""
        parts = [part for part in (self._others, self._views.values(), self._pinned) if part]
        if len(parts) > 1:  # ties keep this order: events first, then the pinned messages
            items = list(heapq.merge(*parts, key=_order))
        else:
            items = list(parts[0]) if parts else []
        dropped = self._dropped
        self.clear()
        return dropped, items

    def _drop_oldest(self) -> None:
        if self._others:
            victim = self._others.popleft()
        else:
            _, victim = self._views.popitem(last=False)
        self.dropped += 1
        victim_id = victim.id if victim.id is not None else (0, 0)
        dropped = self._dropped
        if dropped is None:
            self._dropped = DropRange(victim_id, victim_id, 1)
            return
        # Victims leave in ring order, except a view dropped once no other event is left.
        if victim_id < dropped.first_id:
            dropped.first_id = victim_id
        if victim_id > dropped.last_id:
            dropped.last_id = victim_id
        dropped.count += 1
