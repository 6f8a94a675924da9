"""A slow client's queue: the latest view of every symbol, other events dropped oldest-first and
reported as a range, the gateway's own messages never dropped."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.gateway.client_queue import ClientQueue
from tests.unit.gateway.items import pinned, tick, view


def ids(items: list) -> list[str]:  # type: ignore[type-arg]
    return [item.id_text for item in items]


def test_a_newer_view_replaces_the_queued_one_and_take_keeps_ring_order() -> None:
    queue = ClientQueue(10)
    for item in (view(1, "A"), tick(2), view(3, "B"), view(4, "A"), tick(5), view(6, "B")):
        queue.offer(item)
    dropped, items = queue.take()
    assert dropped is None
    assert ids(items) == ["2-0", "4-0", "5-0", "6-0"]
    assert queue.coalesced == 2 and queue.dropped == 0
    assert len(queue) == 0 and queue.take() == (None, [])


def test_a_full_queue_drops_the_oldest_other_events_and_reports_their_range() -> None:
    queue = ClientQueue(3)
    queue.offer(view(1, "A"))
    for n in range(2, 8):
        queue.offer(tick(n))
    dropped, items = queue.take()
    assert dropped is not None
    assert (dropped.first, dropped.last, dropped.count) == ("2-0", "5-0", 4)
    assert ids(items) == ["1-0", "6-0", "7-0"]  # the view stays: others go first
    assert queue.dropped == 4
    assert queue.take()[0] is None  # reported once


def test_views_are_dropped_only_when_nothing_else_is_left() -> None:
    queue = ClientQueue(2)
    queue.offer(tick(1))
    for n, symbol in ((2, "A"), (3, "B"), (4, "C")):
        queue.offer(view(n, symbol))
    dropped, items = queue.take()
    assert dropped is not None
    assert (dropped.first, dropped.last, dropped.count) == ("1-0", "2-0", 2)
    assert ids(items) == ["3-0", "4-0"]


def test_a_dropped_view_older_than_dropped_events_widens_the_range_backwards() -> None:
    queue = ClientQueue(2)
    queue.offer(view(1, "A"))
    queue.offer(view(2, "B"))
    queue.offer(tick(3))  # over: tick 3 is the only other event, it goes
    queue.offer(view(4, "C"))  # over again: nothing else left, the oldest view (1) goes
    dropped, items = queue.take()
    assert dropped is not None
    assert (dropped.first, dropped.last, dropped.count) == ("1-0", "3-0", 2)
    assert ids(items) == ["2-0", "4-0"]


def test_pinned_messages_are_never_dropped_nor_counted_and_sit_at_their_ring_position() -> None:
    queue = ClientQueue(2)
    queue.pin(pinned(None, "reset"))
    queue.offer(tick(3))
    queue.pin(pinned(5))
    for n in (6, 7, 8):
        queue.offer(tick(n))
    assert len(queue) == 2  # the pinned ones do not count against the capacity
    dropped, items = queue.take()
    assert dropped is not None and (dropped.first, dropped.last, dropped.count) == ("3-0", "6-0", 2)
    assert [(i.type, i.id_text) for i in items] == [
        ("reset", None),
        ("snapshot", "5-0"),
        ("tick.received", "7-0"),
        ("tick.received", "8-0"),
    ]


def test_an_event_at_the_same_id_as_a_pinned_message_goes_before_it() -> None:
    queue = ClientQueue(5)
    queue.pin(pinned(4))
    queue.offer(tick(4))
    assert [i.type for i in queue.take()[1]] == ["tick.received", "snapshot"]


def test_clear_forgets_everything_including_the_drop_report() -> None:
    queue = ClientQueue(1)
    queue.offer(tick(1))
    queue.offer(tick(2))
    queue.pin(pinned(3))
    queue.clear()
    assert queue.take() == (None, [])


offers = st.lists(
    st.one_of(
        st.tuples(st.just("view"), st.sampled_from("ABCDE")),
        st.tuples(st.just("tick"), st.just("T")),
        st.tuples(st.just("take"), st.just("")),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 12), steps=offers)
def test_queue_invariants(capacity: int, steps: list[tuple[str, str]]) -> None:
    """Never more than `capacity`; every event offered is delivered, coalesced or dropped
    (counted); each take is in ring order; other events dropped are always older than those
    delivered after; with room for every symbol, the latest view of each is delivered."""
    queue = ClientQueue(capacity)
    delivered: list[str] = []
    reported = 0
    latest: dict[str, str] = {}
    offered = 0

    def take() -> None:
        nonlocal reported
        dropped, items = queue.take()
        order = [item.id for item in items]
        assert order == sorted(order)
        if dropped is not None:
            reported += dropped.count
            if not any(item.type == "symbol.updated" for item in items):
                assert all(item.id > (int(dropped.last[:-2]), 0) for item in items)
        delivered.extend(ids(items))

    for n, (kind, symbol) in enumerate(steps, start=1):
        if kind == "take":
            take()
            continue
        offered += 1
        queue.offer(view(n, symbol) if kind == "view" else tick(n))
        if kind == "view":
            latest[symbol] = f"{n}-0"
        assert len(queue) <= capacity
    take()
    assert len(delivered) + queue.coalesced + queue.dropped == offered
    assert reported == queue.dropped
    assert len(set(delivered)) == len(delivered)
    if capacity > len(latest):
        assert set(latest.values()) <= set(delivered)
    else:  # each symbol's latest view: delivered, or among the dropped
        missing = set(latest.values()) - set(delivered)
        assert len(missing) <= queue.dropped
