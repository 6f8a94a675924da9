"""A client that stops reading: its queue keeps the latest view of every symbol and drops the
oldest other events, reported as a `missed` range; a fast client on the same gateway meanwhile
gets everything.

Why the assertions are exact:
- The fast client's queue never overflows: the next batch (one view per symbol and a few ticks,
  fewer than GATEWAY_CLIENT_QUEUE) is published only once it received the previous batch.
- The stalled client's socket (a tiny receive buffer, never read) fills, its writer blocks and its
  queue of 10 fills: publishing goes on until /clients shows it dropped and coalesced (adaptive,
  rather than guessing how much the kernel and uvicorn buffer).
- Views of only 3 symbols are ever queued, so no view is ever dropped (views go only when the
  queue holds nothing else), and ticks never coalesce: every tick offered to the stalled client
  is delivered or counted in a `missed` report. Its ticks received + the `missed` counts equal the
  ticks published, and the last view it gets of each symbol is the stored one.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from redis import Redis

from backend.settings import Settings
from tests.integration.gateway.streams import FAST, Publisher, StalledClient, clients, sse
from tests.support.processes import Processes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

QUEUE = 10
SYMBOLS = ("AAA", "BBB", "CCC")
PADDING = "x" * 8_000  # big views fill the stalled socket's buffers sooner


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_a_stalled_client_gets_the_latest_views_and_a_missed_range_while_others_get_all(
    procs: Processes, redis_client: Redis, settings: Settings
) -> None:
    publisher = Publisher(redis_client, settings)
    procs.start_gateway(extra_env={**FAST, "GATEWAY_CLIENT_QUEUE": str(QUEUE)})
    base = procs.gateway_url
    with sse(base + "/stream") as fast:
        fast.wait_events("snapshot", 1)
        stalled = StalledClient(base)
        try:
            wait_for(lambda: len(clients(base)) == 2 and all(c["live"] for c in clients(base)),
                     10, what="both clients live")  # fmt: skip
            slow_id = max(c["id"] for c in clients(base))
            published: list[str] = []
            price = 0.0

            def slow() -> dict[str, Any]:
                return next(c for c in clients(base) if c["id"] == slow_id)

            def publish_batch() -> None:
                nonlocal price
                for symbol in SYMBOLS:
                    price += 1
                    publisher.view(symbol, price, padding=PADDING)
                ticks = publisher.ticks("TTT", 5)
                published.extend(ticks)
                fast.wait_until(
                    lambda fs: fs[-1].data is not None and ticks[-1] in fs[-1].data,
                    "the fast client got the batch",
                )

            for _ in range(2_000):
                publish_batch()
                if slow()["dropped"] >= 5 and slow()["coalesced"] >= 3:
                    break
            publish_batch()  # and one more while it is still stalled
            stalled_info = slow()
            assert stalled_info["dropped"] >= 5 and stalled_info["coalesced"] >= 3

            got = stalled.read_until(published[-1].encode())
            reported = sum(f.json()["count"] for f in got if f.event == "missed")
            after_reading = slow()
        finally:
            stalled.close()
        fast_frames = fast.events()

    # The fast client: every tick, every view, in order, nothing missed.
    assert [f.json()["event_id"] for f in fast_frames if f.event == "tick.received"] == published
    assert not [f for f in fast_frames if f.event == "missed"]
    assert len([f for f in fast_frames if f.event == "symbol.updated"]) == price

    # The stalled client: the latest view of every symbol, equal to the stored one ...
    latest = {f.json()["symbol"]: f.json()["view"] for f in got if f.event == "symbol.updated"}
    assert latest == {symbol: publisher.stored_view(symbol) for symbol in SYMBOLS}
    # ... and each tick either delivered or in a `missed` range, which names it.
    missed = [f.json() for f in got if f.event == "missed"]
    assert missed and all(m["count"] >= 1 and m["first"] <= m["last"] for m in missed)
    delivered = [f.json()["event_id"] for f in got if f.event == "tick.received"]
    assert len(delivered) + sum(m["count"] for m in missed) == len(published)
    assert delivered == [t for t in published if t in set(delivered)]  # in order
    ids = [f.id for f in got if f.id is not None]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    # Counted per client and in /metrics (the fast client dropped nothing).
    assert after_reading["dropped"] == reported and after_reading["missed_reports"] == len(missed)
    assert after_reading["coalesced"] >= stalled_info["coalesced"]
    text = httpx.get(base + "/metrics", timeout=5).text
    assert metric(text, "tickstream_gateway_dropped_events_total") == reported
    assert metric(text, "tickstream_gateway_coalesced_events_total") >= stalled_info["coalesced"]
