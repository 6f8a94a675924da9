"""A client's cursor: nothing at or before it is offered again; filters; pinned messages."""

from __future__ import annotations

from backend.core.realtime import SNAPSHOT
from backend.gateway.client import Client
from backend.gateway.frames import Control, Event
from tests.unit.gateway.items import tick_entry, view_entry


def client(symbols: set[str] | None = None, types: set[str] | None = None) -> Client:
    return Client(
        1, "sse", "test", frozenset(symbols) if symbols is not None else None,
        frozenset(types) if types is not None else None, 10,
    )  # fmt: skip


def taken_ids(c: Client) -> list[str | None]:
    return [item.id_text for item in c.take()[1]]


def test_an_event_at_or_before_the_cursor_is_not_offered_again() -> None:
    c = client()
    c.offer(Event(tick_entry(2, "A")))
    c.offer(Event(tick_entry(2, "A")))
    c.offer(Event(tick_entry(1, "A")))
    c.offer(Event(tick_entry(3, "A")))
    assert taken_ids(c) == ["2-0", "3-0"]
    assert c.cursor == (3, 0) and c.delivered == 2


def test_the_cursor_moves_past_events_the_client_does_not_want() -> None:
    c = client(symbols={"A"}, types={"tick.received"})
    c.offer(Event(tick_entry(1, "B")))
    c.offer(Event(view_entry(2, "A", 1.0)))
    assert c.cursor == (2, 0) and not c.ready.is_set() and taken_ids(c) == []
    c.offer(Event(tick_entry(3, "A")))
    assert c.ready.is_set() and taken_ids(c) == ["3-0"]


def test_a_snapshot_covers_every_event_before_it() -> None:
    c = client()
    c.pin(Control(SNAPSHOT, b"{}", (5, 0), "5-0"))
    c.offer(Event(tick_entry(4, "A")))
    c.offer(Event(tick_entry(6, "A")))
    assert taken_ids(c) == ["5-0", "6-0"]


def test_take_reports_a_drop_once_and_info_counts_it() -> None:
    c = client()
    for n in range(1, 15):
        c.offer(Event(tick_entry(n, "A")))
    dropped, items = c.take()
    assert dropped is not None and dropped.count == 4 and len(items) == 10
    assert c.drained.is_set() and not c.ready.is_set()
    info = c.info()
    assert info["dropped"] == 4 and info["missed_reports"] == 1 and info["delivered"] == 10
    assert info["cursor"] == "14-0" and info["queued"] == 0
