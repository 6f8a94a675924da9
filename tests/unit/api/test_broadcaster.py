"""SSE fan-out without servers: bounded per-client queues, drop-oldest, symbol filters, on_drop.

The requirement: a client that never reads loses its OLDEST events (counted) and never stalls
anyone else. `publish_local` is the whole fan-out, so it is tested directly with real-shaped
`tick.received` events; Redis is never touched.
"""

from __future__ import annotations

import asyncio
from typing import cast

import orjson

from backend.api.broadcaster import Broadcaster, Subscriber
from backend.bus import events
from backend.bus.event_bus import EventBus
from backend.bus.ingest import Outcome, Status
from backend.core.ticks import Tick

BASE_US = 1_795_271_400_000_000


def tick_event(seq: int, symbol: str = "BTCUSDT") -> bytes:
    """The `tick.received` event the API publishes for one accepted tick, numbered by seq."""
    tick = Tick(f"ev-{seq:07d}", symbol, BASE_US + seq, 100.0 + seq % 7, 1.0, "binance", seq, 0)
    (raw,) = events.ticks_received([tick], [Outcome(Status.ACCEPTED)])
    return raw


def seq_of(raw: bytes) -> int:
    return int(orjson.loads(raw)["event_id"].removeprefix("ev-"))


def drain(sub: Subscriber) -> list[int]:
    out: list[int] = []
    while not sub.queue.empty():
        out.append(seq_of(sub.queue.get_nowait()))
    return out


def broadcaster(drops: list[int] | None = None) -> Broadcaster:
    """A broadcaster whose on_drop appends to `drops`; publish_local never uses its Redis."""
    on_drop = (lambda: drops.append(1)) if drops is not None else (lambda: None)
    return Broadcaster(events=cast(EventBus, None), on_drop=on_drop)


def test_queue_is_bounded_at_1000_by_default() -> None:
    assert Subscriber(None).queue.maxsize == 1000


def test_offer_keeps_the_newest_maxsize_events_in_order_and_counts_each_drop() -> None:
    sub = Subscriber(None)
    size = sub.queue.maxsize
    accepted = [sub.offer(tick_event(i)) for i in range(size)]
    assert all(accepted) and sub.dropped == 0 and sub.queue.full()

    extra = 2_500
    overflow = [sub.offer(tick_event(size + i)) for i in range(extra)]
    assert overflow == [False] * extra  # every offer to a full queue drops exactly one event
    assert sub.dropped == extra
    total = size + extra
    assert drain(sub) == list(range(total - size, total))  # the newest, oldest first


def test_offer_accepts_again_once_the_client_reads_and_keeps_the_drop_count() -> None:
    sub = Subscriber(None, queue=asyncio.Queue(maxsize=3))
    results = [sub.offer(tick_event(i)) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert sub.queue.get_nowait() == tick_event(2)  # 0 and 1 were the ones dropped
    assert sub.offer(tick_event(5)) is True  # room again: nothing dropped
    assert sub.dropped == 2
    assert drain(sub) == [3, 4, 5]


def test_publish_local_respects_the_symbols_filter() -> None:
    b = broadcaster()
    everything = b.subscribe(None)
    btc = b.subscribe(frozenset({"BTCUSDT"}))
    eth_aapl = b.subscribe(frozenset({"ETHUSDT", "AAPL"}))
    symbols = ["BTCUSDT", "ETHUSDT", "AAPL", "EURUSD", "BTCUSDT", "XAUUSD", "AAPL"]
    for seq, symbol in enumerate(symbols):
        b.publish_local(tick_event(seq, symbol), symbol)
    b.publish_local(b'{"type":"feeder.status"}', None)  # an event without a symbol

    assert drain(btc) == [0, 4]
    assert drain(eth_aapl) == [1, 2, 6]
    unfiltered = [orjson.loads(everything.queue.get_nowait()) for _ in range(len(symbols) + 1)]
    assert [e.get("symbol") for e in unfiltered] == [*symbols, None]
    assert everything.queue.empty()


def test_on_drop_is_called_once_per_dropped_event_and_only_for_wanted_events() -> None:
    drops: list[int] = []
    b = broadcaster(drops)
    btc = b.subscribe(frozenset({"BTCUSDT"}))
    btc.queue = asyncio.Queue(maxsize=2)
    eth = b.subscribe(frozenset({"ETHUSDT"}))
    eth.queue = asyncio.Queue(maxsize=2)

    for seq in range(10):
        b.publish_local(tick_event(seq, "BTCUSDT"), "BTCUSDT")
    assert len(drops) == btc.dropped == 8
    # ETHUSDT's queue is empty, and events it filters out never count against it.
    assert eth.dropped == 0 and eth.queue.empty()

    for seq in range(10, 13):
        b.publish_local(tick_event(seq, "ETHUSDT"), "ETHUSDT")
    assert eth.dropped == 1
    assert len(drops) == btc.dropped + eth.dropped == 9
    assert drain(btc) == [8, 9] and drain(eth) == [11, 12]


def test_a_full_subscriber_does_not_affect_another_subscribers_queue() -> None:
    drops: list[int] = []
    b = broadcaster(drops)
    stalled = b.subscribe(None)  # never read
    reader = b.subscribe(None)  # reads after every event, like a connected browser
    received: list[int] = []
    total = 5_000
    for seq in range(total):
        b.publish_local(tick_event(seq), "BTCUSDT")
        received.extend(drain(reader))

    assert received == list(range(total))
    assert reader.dropped == 0
    size = stalled.queue.maxsize
    assert stalled.dropped == total - size
    assert len(drops) == total - size  # every drop was the stalled client's
    assert drain(stalled) == list(range(total - size, total))


def test_an_unsubscribed_client_gets_nothing_and_drops_nothing() -> None:
    drops: list[int] = []
    b = broadcaster(drops)
    gone = b.subscribe(None)
    gone.queue = asyncio.Queue(maxsize=1)
    b.unsubscribe(gone)
    for seq in range(5):
        b.publish_local(tick_event(seq), "BTCUSDT")
    assert gone.queue.empty() and gone.dropped == 0 and drops == []
    b.unsubscribe(gone)  # idempotent: a second disconnect must not raise
