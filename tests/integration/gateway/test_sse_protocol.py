"""The gateway's SSE protocol through a real gateway process: snapshot then live with nothing
missing or twice, resume by `Last-Event-ID` or `after=`, reset when the id is gone or garbage,
heartbeats, filters."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from redis import Redis

from backend.core.stream_ids import parse_id
from backend.settings import Settings
from tests.integration.gateway.streams import FAST, Frame, Publisher, sse
from tests.support.processes import Processes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher(redis_client: Redis, settings: Settings) -> Publisher:
    return Publisher(redis_client, settings)


def ring_after(publisher: Publisher, after: str) -> list[tuple[str, bytes, bytes]]:
    """(id, type, symbol) of every ring entry after `after`."""
    entries: Any = publisher.redis.xrange(publisher.ring.key, min=f"({after}", max="+")
    return [(raw_id.decode(), f[b"t"], f[b"s"]) for raw_id, f in entries]


def ids_of(frames: list[Frame]) -> list[str | None]:
    return [f.id for f in frames]


def test_a_client_gets_retry_then_a_snapshot_at_the_ring_position_then_every_event_once(
    procs: Processes, publisher: Publisher
) -> None:
    publisher.view("AAA", 1.0)
    publisher.view("BBB", 2.0)
    procs.start_gateway(extra_env=FAST)
    stop = threading.Event()

    def publish() -> None:  # the client connects while views and ticks are being published
        n = 0
        while not stop.is_set():
            n += 1
            publisher.view("AAA", 10.0 + n)
            publisher.ticks("BBB", 2)

    writer = threading.Thread(target=publish, daemon=True)
    writer.start()
    try:
        with sse(procs.gateway_url + "/stream") as stream:
            snapshot = stream.wait_events("snapshot", 1)[0]
            stream.wait_events("symbol.updated", 5)
            stop.set()
            writer.join(10)
            last = publisher.last_id()
            stream.wait_until(lambda fs: fs[-1].id == last, "the last event published")
            frames = list(stream.frames)
    finally:
        stop.set()
    assert frames[0].retry == 2000 and frames[1].comment == "connected"
    assert frames[2].event == "snapshot"
    data = snapshot.json()
    assert snapshot.id is not None and data["at"] == snapshot.id
    # The snapshot's views are exactly what the events up to its position made them.
    up_to: Any = publisher.redis.xrevrange(publisher.ring.key, max=snapshot.id, count=1000)
    aaa = next(f[b"d"] for _, f in up_to if f[b"t"] == b"symbol.updated" and f[b"s"] == b"AAA")
    assert data["views"]["AAA"] == Frame(data=aaa.decode()).json()["view"]
    assert data["views"]["BBB"]["last_price"] == 2.0
    # Then the ring after it, in order, nothing twice: every tick; and of the views, those not
    # replaced in the client's queue by a newer view of their symbol (coalesced), the last one
    # of each symbol always.
    live = [f for f in frames[3:] if f.event is not None]
    ring = ring_after(publisher, snapshot.id)
    delivered = ids_of(live)
    assert delivered == [i for i, _, _ in ring if i in set(delivered)]  # a subsequence: in order
    assert len(set(delivered)) == len(delivered)
    assert [i for i in delivered if i is not None] == delivered
    ticks = [i for i, kind, _ in ring if kind == b"tick.received"]
    assert [f.id for f in live if f.event == "tick.received"] == ticks and len(ticks) >= 10
    views = [i for i, kind, _ in ring if kind == b"symbol.updated"]
    assert set(delivered) - set(ticks) <= set(views) and views[-1] in delivered


def test_a_client_resumes_with_last_event_id_or_after_exactly_after_its_last_event(
    procs: Processes, publisher: Publisher
) -> None:
    procs.start_gateway(extra_env=FAST)
    url = procs.gateway_url + "/stream"
    with sse(url) as stream:
        stream.wait_events("snapshot", 1)
        first = publisher.ticks("AAA", 5)
        seen = stream.wait_events("tick.received", 5)
    assert [f.json()["event_id"] for f in seen] == first
    more = publisher.ticks("AAA", 4)  # published while the client is away

    with sse(url, {"Last-Event-ID": seen[-1].id or ""}) as resumed:
        resumed.wait_events(None, 4)
        marker = publisher.ticks("ZZZ", 1)
        got = resumed.wait_events(None, 5)
        # Exactly those, in order, then live: no snapshot, nothing twice.
        assert [f.json()["event_id"] for f in got] == more + marker
        assert len(resumed.events()) == 5

    with sse(f"{url}?after={seen[2].id}") as by_query:
        got = by_query.wait_events(None, 6)
    assert [f.json()["event_id"] for f in got] == first[3:] + more
    ids = [parse_id(f.id) for f in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_an_id_older_than_the_ring_gets_a_reset_then_a_snapshot(
    procs: Processes, publisher: Publisher
) -> None:
    publisher.view("AAA", 1.0)
    publisher.ticks("AAA", 5)
    entries: Any = publisher.redis.xrange(publisher.ring.key)
    old, keep_from = entries[1][0].decode(), entries[4][0].decode()
    publisher.redis.xtrim(publisher.ring.key, minid=keep_from, approximate=False)
    procs.start_gateway(extra_env=FAST)
    with sse(procs.gateway_url + "/stream", {"Last-Event-ID": old}) as stream:
        reset, snapshot = stream.wait_events(None, 2)
        publisher.ticks("AAA", 1)
        after = stream.wait_events(None, 3)[2]
    assert reset.event == "reset" and reset.id is None
    assert reset.json() == {
        "after": old,
        "reason": "aged out: the ring no longer holds the events after it",
    }
    assert snapshot.event == "snapshot" and snapshot.id == publisher.last_id_before(after.id)
    assert snapshot.json()["views"]["AAA"]["last_price"] == 1.0
    assert after.event == "tick.received"


def test_a_garbage_last_event_id_resets_and_a_malformed_after_is_refused(
    procs: Processes, publisher: Publisher
) -> None:
    publisher.view("AAA", 3.0)
    procs.start_gateway(extra_env=FAST)
    with sse(procs.gateway_url + "/stream", {"Last-Event-ID": "not-an-id"}) as stream:
        reset, snapshot = stream.wait_events(None, 2)
    assert reset.event == "reset" and reset.json() == {
        "after": "not-an-id",
        "reason": "not a ring id",
    }
    assert snapshot.event == "snapshot" and snapshot.json()["views"]["AAA"]["last_price"] == 3.0

    answer = httpx.get(procs.gateway_url + "/stream", params={"after": "yesterday"}, timeout=5)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "after"


def test_heartbeat_comments_keep_a_quiet_stream_alive(procs: Processes) -> None:
    procs.start_gateway(extra_env=FAST)
    with sse(procs.gateway_url + "/stream") as stream:
        stream.wait_until(
            lambda _: sum(f.comment == "heartbeat" for f in stream.frames) >= 3, "3 heartbeats"
        )
    assert [f.event for f in stream.events()] == ["snapshot"]


def test_symbols_and_types_filter_the_stream_and_its_snapshot(
    procs: Processes, publisher: Publisher
) -> None:
    aaa = publisher.view("AAA", 1.0)
    publisher.view("BBB", 2.0)
    procs.start_gateway(extra_env=FAST)
    url = procs.gateway_url + "/stream?symbols=AAA,CCC&types=tick.received,symbol.updated"
    with sse(url) as stream:
        snapshot = stream.wait_events("snapshot", 1)[0]
        publisher.ticks("BBB", 3)
        publisher.view("BBB", 2.5)
        wanted = publisher.ticks("AAA", 2)
        publisher.view("AAA", 1.5)
        marker = publisher.ticks("CCC", 1)
        stream.wait_until(
            lambda fs: fs[-1].data is not None and marker[0] in fs[-1].data, "the marker"
        )
        frames = stream.events()
    assert list(snapshot.json()["views"]) == ["AAA"]
    assert snapshot.json()["views"]["AAA"] == aaa
    got = [(f.event, f.json()["symbol"]) for f in frames[1:]]
    assert got == [("tick.received", "AAA")] * 2 + [
        ("symbol.updated", "AAA"),
        ("tick.received", "CCC"),
    ]
    assert [f.json()["event_id"] for f in frames[1:3]] == wanted

    with sse(procs.gateway_url + "/stream?types=symbol.updated") as views_only:
        views_only.wait_events("snapshot", 1)
        publisher.ticks("AAA", 2)
        publisher.view("BBB", 3.0)
        views_only.wait_events("symbol.updated", 1)
        assert [f.event for f in views_only.events()] == ["snapshot", "symbol.updated"]


def test_a_resume_longer_than_the_client_queue_loses_nothing(
    procs: Processes, publisher: Publisher
) -> None:
    procs.start_gateway(extra_env={**FAST, "GATEWAY_CLIENT_QUEUE": "10"})
    url = procs.gateway_url + "/stream"
    with sse(url) as stream:
        stream.wait_events("snapshot", 1)
        publisher.ticks("AAA", 1)
        (last,) = stream.wait_events("tick.received", 1)
    backlog = publisher.ticks("AAA", 60)
    with sse(url, {"Last-Event-ID": last.id or ""}) as resumed:
        got = resumed.wait_events("tick.received", 60)
        marker = publisher.ticks("ZZZ", 1)
        resumed.wait_events("tick.received", 61)
        assert resumed.events("missed") == []
    assert [f.json()["event_id"] for f in got] == backlog
    assert resumed.events()[-1].json()["event_id"] == marker[0]


def test_the_gateways_own_trim_ages_ids_out_and_their_resume_resets(
    procs: Processes, publisher: Publisher
) -> None:
    """REALTIME_RETENTION through the gateway's trim loop (XTRIM MINID ~: whole stream nodes of
    100 entries go once they are old enough)."""
    view = publisher.view("AAA", 1.0)
    publisher.ticks("AAA", 250)
    entries: Any = publisher.redis.xrange(publisher.ring.key, count=1)
    oldest = entries[0][0].decode()
    procs.start_gateway(extra_env={**FAST, "REALTIME_RETENTION": "1"})
    wait_for(lambda: publisher.redis.xlen(publisher.ring.key) < 251, 20, what="the gateway's trim")
    with sse(procs.gateway_url + "/stream", {"Last-Event-ID": oldest}) as stream:
        reset, snapshot = stream.wait_events(None, 2)
    assert reset.event == "reset" and reset.json()["after"] == oldest
    assert "aged out" in reset.json()["reason"]
    assert snapshot.event == "snapshot" and snapshot.json()["views"] == {"AAA": view}
