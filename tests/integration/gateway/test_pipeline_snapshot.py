"""Snapshot + live through the real pipeline: a client that connects to the gateway while ticks
stream through API → worker (calc) → ring gets a snapshot, then every later view of every symbol,
so the snapshot's `ticks_total` plus the deltas that follow end at the final `ticks_total` — no gap,
no double (issue #15's first proof).

The ticks come from the chaos load (several symbols, exact duplicates, timestamps a little out of
order); the reference for "every later view" is the ring itself, read with XRANGE after the
snapshot's `at`.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

import httpx
import orjson
import pytest
from redis import Redis

from backend.core.events import SYMBOL_UPDATED, TICK_RECEIVED
from backend.settings import Settings
from tests.integration.gateway.streams import api_views, without_clock
from tests.support.load import SYMBOLS, Load, Stream
from tests.support.processes import Processes
from tests.support.sse import SseEvent, SseRecorder
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def ring_views_after(redis: Redis, key: str, after: str) -> list[tuple[str, str, Any]]:
    """(id, symbol, event) of every `symbol.updated` in the ring after `after` (exclusive)."""
    out = []
    for raw_id, fields in redis.xrange(key, min=f"({after}", max="+"):
        if fields[b"t"].decode() == SYMBOL_UPDATED:
            event = SseEvent(raw_id.decode(), SYMBOL_UPDATED, fields[b"d"].decode())
            out.append((event.id, fields[b"s"].decode(), event.json()))
    return out


def ring_last_id(redis: Redis, key: str) -> str:
    newest = redis.xrevrange(key, count=1)
    return newest[0][0].decode() if newest else "0-0"


def id_key(text: str | None) -> tuple[int, int]:
    ms, _, seq = (text or "0-0").partition("-")
    return int(ms), int(seq)


def test_a_client_connected_mid_stream_gets_a_snapshot_then_every_later_view_exactly_once(
    procs: Processes, settings: Settings, redis_client: Redis
) -> None:
    procs.start_api()
    procs.start_worker()
    # Heartbeats every half second: the recorder notices `close()` on a quiet stream.
    procs.start_gateway(extra_env={"GATEWAY_HEARTBEAT_S": "0.5"})
    load = Load(procs.api_url, Stream(seed=15, dup_rate=0.1, bad_rate=0.0), tps=300)
    load.start()
    try:
        # Mid-stream: every symbol already has a view, and ticks keep coming.
        wait_for(lambda: len(api_views(procs.api_url, SYMBOLS)) == len(SYMBOLS), 30, what="4 views")
        wait_for(lambda: load.acked_count() >= 300, 30, what="300 ticks before connecting")
        with SseRecorder(procs.gateway_url + "/stream") as client:
            connected_at = load.acked_count()
            wait_for(lambda: load.acked_count() >= connected_at + 400, 30, what="400 more ticks")
            tally = load.stop()
            # The load is done: wait until the API's views hold every acknowledged tick...
            expected = Counter(t["symbol"] for t in tally.acked.values())
            wait_for(
                lambda: {
                    s: v["ticks_total"] for s, v in api_views(procs.api_url, SYMBOLS).items()
                } == dict(expected),
                60, what="the API's views to hold every acknowledged tick",
            )  # fmt: skip
            # ...and until the client has read up to the ring's end (it follows every event).
            last = ring_last_id(redis_client, settings.realtime_stream)
            client.wait_until(
                lambda events: any(id_key(e.id) >= id_key(last) for e in events[-50:]),
                30, what=f"the client to reach the ring's last id {last}",
            )  # fmt: skip
            (gateway_client,) = httpx.get(procs.gateway_url + "/clients", timeout=5).json()
        assert ring_last_id(redis_client, settings.realtime_stream) == last  # quiet since
    finally:
        load.stop()

    events = client.events
    assert not tally.given_up and not tally.rejected
    assert len(tally.acked) < tally.sent  # duplicates were sent
    kinds = Counter(e.event for e in events)
    assert kinds["snapshot"] == 1 and events[0].event == "snapshot", kinds
    assert not kinds["reset"] and not kinds["missed"], kinds

    snapshot = events[0].json()
    at = snapshot["at"]
    assert events[0].id == at
    # Connected mid-stream: the snapshot holds every symbol, not yet with its final count.
    assert set(snapshot["views"]) == set(SYMBOLS)
    assert all(snapshot["views"][s]["ticks_total"] < expected[s] for s in SYMBOLS)

    # The client's view of every symbol: the snapshot's, replaced by each later view.
    updates = [e for e in events if e.event == SYMBOL_UPDATED]
    held = dict(snapshot["views"])
    totals: dict[str, list[int]] = {s: [v["ticks_total"]] for s, v in held.items()}
    for event in updates:
        body = event.json()
        held[body["symbol"]] = body["view"]
        totals[body["symbol"]].append(body["view"]["ticks_total"])

    final = api_views(procs.api_url, SYMBOLS)
    for symbol in SYMBOLS:
        assert without_clock(held[symbol]) == without_clock(final[symbol]), symbol
        seen = totals[symbol]
        assert seen == sorted(seen), (symbol, seen)  # never goes down
        assert seen[0] == snapshot["views"][symbol]["ticks_total"]
        assert seen[-1] == final[symbol]["ticks_total"] == expected[symbol]
        # The snapshot's count plus what the deltas added is the final count.
        increments = [b - a for a, b in pairwise(seen)]
        assert seen[0] + sum(increments) == expected[symbol]
        assert len(seen) > 1  # the symbol did change after the snapshot

    # Exactly the ring's views after the snapshot's position, in ring order, none twice; the only
    # ones not delivered are those the gateway coalesced (a newer view of the same symbol replaced
    # it in the client's queue before the writer sent it), each counted, never the last.
    ring = ring_views_after(redis_client, settings.realtime_stream, at)
    got = [(e.id, e.json()["symbol"], e.json()) for e in updates]
    delivered = {g[0] for g in got}
    assert len(delivered) == len(got)  # none twice
    assert got == [r for r in ring if r[0] in delivered]  # each as in the ring, in ring order
    skipped = [r for r in ring if r[0] not in delivered]
    assert len(skipped) == gateway_client["coalesced"], (skipped, gateway_client)
    assert gateway_client["dropped"] == 0
    for symbol in SYMBOLS:
        mine = [r[0] for r in ring if r[1] == symbol]
        assert mine[-1] in delivered, symbol  # the latest view always arrives
    assert len(skipped) <= len(ring) // 2  # a healthy client: coalescing is the exception


def ring_tick_counts(redis: Redis, key: str, after: str = "-") -> list[tuple[str, int]]:
    """(id, count) of every `tick.received` in the ring after `after` (exclusive; "-": all)."""
    low = after if after == "-" else f"({after}"
    return [
        (raw_id.decode(), orjson.loads(fields[b"d"])["count"])
        for raw_id, fields in redis.xrange(key, min=low, max="+")
        if fields[b"t"].decode() == TICK_RECEIVED
    ]


def test_tick_received_counts_after_a_quiet_point_add_up_to_the_ticks_the_api_accepted(
    procs: Processes, settings: Settings, redis_client: Redis
) -> None:
    """`tick.received` is not coalesced: a client that starts at a quiet point (every tick
    acknowledged so far has its event in the ring) gets events whose `count`s add up to exactly
    the ticks the API acknowledged as accepted afterwards. The API appends the event after it
    answers, so the quiet point is a pause in the load, not a moment in a running stream."""
    procs.start_api()
    procs.start_worker()
    procs.start_gateway(extra_env={"GATEWAY_HEARTBEAT_S": "0.5"})
    key = settings.realtime_stream
    stream = Stream(seed=1515, dup_rate=0.1, bad_rate=0.0)  # shared: later duplicates of earlier
    before = Load(procs.api_url, stream, tps=300)
    before.start()
    wait_for(lambda: before.acked_count() >= 200, 30, what="200 ticks before the pause")
    accepted_before = set(before.stop().acked)
    wait_for(
        lambda: sum(n for _, n in ring_tick_counts(redis_client, key)) == len(accepted_before),
        20, what="every acknowledged tick's tick.received in the ring",
    )  # fmt: skip
    quiet = ring_last_id(redis_client, key)
    url = f"{procs.gateway_url}/stream?types={TICK_RECEIVED}&after={quiet}"
    after = Load(procs.api_url, stream, tps=300)
    try:
        with SseRecorder(url) as client:
            wait_for(
                lambda: any(c["live"] for c in httpx.get(procs.gateway_url + "/clients").json()),
                10, what="the client live in the gateway's fan-out",
            )  # fmt: skip
            after.start()
            wait_for(lambda: after.acked_count() >= 400, 30, what="400 ticks after the pause")
            tally = after.stop()
            wait_for(
                lambda: ring_tick_counts(redis_client, key, quiet)
                and sum(n for _, n in ring_tick_counts(redis_client, key))
                == len(accepted_before | set(tally.acked)),
                20, what="every acknowledged tick's tick.received in the ring",
            )  # fmt: skip
            in_ring = ring_tick_counts(redis_client, key, quiet)
            client.wait_until(
                lambda events: events and events[-1].id == in_ring[-1][0],
                30, what="the client to reach the ring's last tick.received",
            )  # fmt: skip
    finally:
        after.stop()
    assert not tally.given_up and not tally.rejected
    accepted_after = set(tally.acked) - accepted_before  # a resent earlier tick: "duplicate"
    assert len(accepted_after) < len(tally.acked)  # some duplicates of earlier ticks were sent
    events = client.events
    assert [e.event for e in events] == [TICK_RECEIVED] * len(in_ring)  # no snapshot: resumed
    assert [(e.id, e.json()["count"]) for e in events] == in_ring  # each once, in ring order
    assert sum(e.json()["count"] for e in events) == len(accepted_after)
