"""N gateway replicas behind a plain load balancer, no stickiness: each reads the ring itself,
and an event has the same id whichever replica sends it, so a client that reconnects to another
replica resumes exactly where it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse
from redis import Redis

from backend.bus.events import outgoing
from backend.bus.realtime import Ring
from backend.core.events import TickReceived
from backend.settings import Settings
from tests.integration.tasks.test_views import external, write_external
from tests.support.processes import Processes
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def tick_event(symbol: str, n: int) -> TickReceived:
    return TickReceived(
        symbol=symbol, ts="2026-12-04T10:00:00Z", price=100.0 + n, volume=1.0, source="s",
        event_id=f"{symbol}-{n}", count=1,
    )  # fmt: skip


def append(redis: Redis, settings: Settings, events: list[TickReceived]) -> None:
    ring = Ring.from_settings(settings)
    with redis.pipeline(transaction=False) as pipe:
        for event in events:
            ring.queue_append(pipe, outgoing(event))
        pipe.execute()


def sse(url: str, headers: dict[str, str] | None = None) -> Iterator[ServerSentEvent]:
    """The events of one SSE connection (comments are skipped by httpx-sse)."""
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=10)) as client,
        connect_sse(client, "GET", url, headers=headers or {}) as source,
    ):
        assert source.response.status_code == 200
        yield from source.iter_sse()


def take(events: Iterator[ServerSentEvent], n: int, kind: str) -> list[ServerSentEvent]:
    got: list[ServerSentEvent] = []
    for event in events:
        if event.event == kind:
            got.append(event)
            if len(got) == n:
                return got
    raise AssertionError(f"the stream ended after {len(got)} {kind} events")


def event_ids(events: list[ServerSentEvent]) -> list[str]:
    return [e.json()["event_id"] for e in events]


def test_a_client_resumes_on_another_replica_exactly_after_its_last_id(
    procs: Processes, settings: Settings, redis_client: Redis
) -> None:
    second_port = free_port()
    procs.start_gateway()
    procs.start_gateway("gateway-b", port=second_port)
    first_url = procs.gateway_url + "/stream?types=tick.received"
    second_url = f"http://127.0.0.1:{second_port}/stream?types=tick.received"

    stream = sse(first_url)
    assert next(e for e in stream if e.event == "snapshot").id is not None
    append(redis_client, settings, [tick_event("AAA", n) for n in range(5)])
    seen = take(stream, 3, "tick.received")
    stream.close()  # the client goes away after 3 of 5; 2 more are published meanwhile
    append(redis_client, settings, [tick_event("AAA", n) for n in range(5, 8)])

    resumed = sse(second_url, {"Last-Event-ID": seen[-1].id})
    rest = take(resumed, 5, "tick.received")
    resumed.close()
    assert event_ids(seen) == ["AAA-0", "AAA-1", "AAA-2"]
    assert event_ids(rest) == ["AAA-3", "AAA-4", "AAA-5", "AAA-6", "AAA-7"]

    # Both replicas name every event by the same id: the ring's.
    from_second = sse(second_url, {"Last-Event-ID": seen[0].id})
    again = take(from_second, 7, "tick.received")
    from_second.close()
    assert [e.id for e in again] == [e.id for e in seen[1:] + rest]


def test_every_replica_snapshots_the_same_views_at_the_same_position(
    procs: Processes, settings: Settings, redis_client: Redis
) -> None:
    for k in range(3):
        ts = 1_700_000_000_000_000 + k * 1_000
        assert write_external(settings, external(ts, 10.0 + k, f"e{k}"), ts)
    second_port = free_port()
    procs.start_gateway()
    procs.start_gateway("gateway-b", port=second_port)

    def first_snapshot(base: str) -> dict[str, Any]:
        stream = sse(base + "/stream")
        event = next(e for e in stream if e.event == "snapshot")
        stream.close()
        return {"id": event.id, **event.json()}

    a = first_snapshot(procs.gateway_url)
    b = first_snapshot(f"http://127.0.0.1:{second_port}")
    assert a == b
    assert a["views"]["VW"]["last_price"] == 12.0 and a["at"] == a["id"]
