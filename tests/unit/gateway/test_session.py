"""Where a client starts: snapshot, resume from the ring (then live, nothing twice), or reset."""

from __future__ import annotations

import asyncio

import orjson

from backend.gateway import session
from backend.gateway.client import Client
from backend.gateway.hub import Hub
from backend.gateway.metrics import GatewayMetrics
from tests.unit.gateway.fake_reader import FakeReader
from tests.unit.gateway.items import tick_entry, view_entry


def setup(n_entries: int, capacity: int = 100) -> tuple[Hub, FakeReader, Client]:
    reader = FakeReader([tick_entry(n, "A") for n in range(1, n_entries + 1)])
    hub = Hub(reader, GatewayMetrics(), retention_s=60)  # type: ignore[arg-type]
    hub.position = reader.last_generated
    hub.epoch = 1
    client = hub.register(lambda n: Client(n, "sse", "t", None, None, capacity))
    return hub, reader, client


def kinds(client: Client) -> list[tuple[str, str | None]]:
    return [(i.type, i.id_text) for i in client.take()[1]]


def test_no_id_starts_from_a_snapshot() -> None:
    hub, _, client = setup(3)
    assert asyncio.run(session.start(hub, client, None)) == "snapshot"
    assert kinds(client) == [("snapshot", "3-0")] and client.live


def test_a_resume_gets_exactly_the_events_after_its_id_then_live() -> None:
    hub, _, client = setup(5)
    assert asyncio.run(session.start(hub, client, (2, 0))) == "resume"
    hub.apply([tick_entry(5, "A"), tick_entry(6, "A")])  # 5 again: already given
    assert [i for _, i in kinds(client)] == ["3-0", "4-0", "5-0", "6-0"]


def test_a_resume_reads_in_chunks_and_waits_for_the_writer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(session, "CHUNK", 3)
    hub, _, client = setup(20, capacity=10)
    delivered: list[str | None] = []

    async def run() -> str:
        starting = asyncio.create_task(session.start(hub, client, (1, 0)))
        while not starting.done() or len(client.queue):
            await asyncio.sleep(0)
            delivered.extend(item.id_text for item in client.take()[1])
        return await starting

    assert asyncio.run(run()) == "resume"
    assert delivered == [f"{n}-0" for n in range(2, 21)]
    assert client.queue.dropped == 0


def test_an_id_older_than_the_ring_resets_then_snapshots() -> None:
    hub, reader, client = setup(5)
    hub.apply([view_entry(6, "A", 9.0)])
    reader.append(view_entry(6, "A", 9.0))
    reader.trim_before((4, 0))
    assert asyncio.run(session.start(hub, client, (2, 0))) == "reset"
    items = client.take()[1]
    assert [(i.type, i.id_text) for i in items] == [("reset", None), ("snapshot", "6-0")]
    assert orjson.loads(items[0].data) == {  # type: ignore[attr-defined]
        "after": "2-0",
        "reason": "aged out: the ring no longer holds the events after it",
    }
    assert orjson.loads(items[1].data)["views"] == {"A": {"last_price": 9.0}}  # type: ignore[attr-defined]


def test_an_id_the_ring_never_reached_resets() -> None:
    hub, _, client = setup(5)
    assert asyncio.run(session.start(hub, client, (99, 0))) == "reset"
    assert [k for k, _ in kinds(client)] == ["reset", "snapshot"]


def test_an_invalid_id_resets() -> None:
    hub, _, client = setup(2)
    assert asyncio.run(session.start(hub, client, None, invalid="garbage")) == "reset"
    items = client.take()[1]
    assert orjson.loads(items[0].data)["after"] == "garbage"  # type: ignore[attr-defined]
    assert items[1].type == "snapshot"


def test_a_resume_never_overfills_a_small_queue() -> None:
    """A backlog longer than the client's queue is read in pieces that fit: a client that reads
    loses nothing (only a client too slow for the live stream gets `missed`)."""
    hub, _, client = setup(60, capacity=10)
    delivered: list[str | None] = []

    async def run() -> str:
        starting = asyncio.create_task(session.start(hub, client, (1, 0)))
        while not starting.done() or len(client.queue):
            await asyncio.sleep(0)
            dropped, items = client.take()
            assert dropped is None
            delivered.extend(item.id_text for item in items)
        return await starting

    assert asyncio.run(run()) == "resume"
    assert delivered == [f"{n}-0" for n in range(2, 61)]
