"""The hub's fan-out, views cache and snapshots, on a ring in memory (no Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from backend.gateway.client import Client
from backend.gateway.hub import Hub
from backend.gateway.metrics import GatewayMetrics
from tests.unit.gateway.fake_reader import FakeReader
from tests.unit.gateway.items import tick_entry, view_entry


def make_hub(reader: FakeReader | None = None, position: tuple[int, int] | None = (0, 0)) -> Hub:
    hub = Hub(reader or FakeReader(), GatewayMetrics(), retention_s=60)  # type: ignore[arg-type]
    hub.position = position
    return hub


def add_client(hub: Hub, symbols: set[str] | None = None, capacity: int = 100) -> Client:
    return hub.register(
        lambda n: Client(
            n, "ws", "test", frozenset(symbols) if symbols is not None else None, None, capacity
        )
    )


def taken(client: Client) -> list[tuple[str, str | None]]:
    return [(item.type, item.id_text) for item in client.take()[1]]


def snapshot(client: Client) -> dict[str, Any]:
    items = client.take()[1]
    assert items[0].type == "snapshot"
    return orjson.loads(items[0].data)  # type: ignore[attr-defined]


def test_apply_offers_each_event_to_the_clients_that_follow_it_and_moves_the_position() -> None:
    hub = make_hub()
    everything, only_a = add_client(hub), add_client(hub, {"A"})
    hub.attach(everything)
    hub.attach(only_a)
    hub.apply([tick_entry(1, "A"), tick_entry(2, "B"), view_entry(3, "A", 1.0)])
    assert [i for _, i in taken(everything)] == ["1-0", "2-0", "3-0"]
    assert [i for _, i in taken(only_a)] == ["1-0", "3-0"]
    assert hub.position == (3, 0)


def test_a_client_not_attached_gets_nothing() -> None:
    hub = make_hub()
    waiting = add_client(hub)
    hub.apply([tick_entry(1, "A")])
    assert taken(waiting) == [] and hub.clients == {waiting.number: waiting}
    hub.unregister(waiting)
    assert hub.clients == {}


def test_a_snapshot_is_the_cached_views_at_the_position() -> None:
    reader = FakeReader(views={"A": b'{"last_price":1.0}', "B": b'{"last_price":2.0}'})
    hub = make_hub(reader, position=None)
    asyncio.run(hub._load_tail())
    hub.apply([view_entry(5, "B", 3.0), view_entry(6, "C", 4.0), tick_entry(7, "D")])
    client = add_client(hub)
    hub.start_from_snapshot(client)
    assert client.live and client.cursor == (7, 0)
    assert snapshot(client) == {
        "at": "7-0",
        "views": {
            "A": {"last_price": 1.0},
            "B": {"last_price": 3.0},  # the newer view from its event
            "C": {"last_price": 4.0},
        },
    }
    hub.apply([tick_entry(8, "A")])
    assert taken(client) == [("tick.received", "8-0")]


def test_a_snapshot_of_some_symbols_skips_those_without_a_view() -> None:
    hub = make_hub()
    hub.apply([view_entry(1, "A", 1.0), view_entry(2, "B", 2.0)])
    data = orjson.loads(hub.snapshot_of(["B", "Z"]).data)
    assert data == {"at": "2-0", "views": {"B": {"last_price": 2.0}}}


@pytest.mark.parametrize(
    ("before", "after", "new"),
    [
        ({"A"}, {"A", "B"}, {"B"}),
        ({"A"}, None, None),
        (None, None, set()),
        (None, {"A"}, set()),
        ({"A", "B"}, {"A"}, set()),
    ],
)
def test_follow_returns_the_newly_followed_symbols(
    before: set[str] | None, after: set[str] | None, new: set[str] | None
) -> None:
    hub = make_hub()
    client = add_client(hub, before)
    hub.attach(client)
    result = hub.follow(client, frozenset(after) if after is not None else None)
    assert result == (frozenset(new) if new is not None else None)
    hub.apply([tick_entry(1, "A"), tick_entry(2, "B"), tick_entry(3, "C")])
    wanted = {"A", "B", "C"} if after is None else after
    assert [i for _, i in taken(client)] == [
        f"{n}-0" for n, s in ((1, "A"), (2, "B"), (3, "C")) if s in wanted
    ]


def test_detach_removes_the_client_from_the_fan_out() -> None:
    hub = make_hub()
    client = add_client(hub, {"A"})
    hub.attach(client)
    hub.detach(client)
    hub.apply([tick_entry(1, "A")])
    assert taken(client) == [] and not client.live and not client.went_live.is_set()


def test_a_hub_that_lost_its_place_resets_its_live_clients() -> None:
    """Cut off while the ring was trimmed past its position: a reset, then a fresh snapshot."""

    async def until(condition: Any) -> None:
        async with asyncio.timeout(5):
            while not condition():
                await asyncio.sleep(0)

    async def scenario() -> list[tuple[str, str | None]]:
        reader = FakeReader([tick_entry(1, "A")], views={"A": b'{"last_price":1.0}'})
        hub = Hub(reader, GatewayMetrics(), retention_s=60, sleep=lambda s: asyncio.sleep(0))  # type: ignore[arg-type]
        await hub.start()
        client = add_client(hub)
        await until(lambda: hub.ready)
        hub.start_from_snapshot(client)
        client.take()
        reader.fail_next_read = ConnectionError("cut")
        for n in (2, 3, 4):
            reader.append(tick_entry(n, "A"))
        reader.trim_before((4, 0))  # 2 and 3 are gone before the hub reads again
        await until(lambda: hub.epoch == 2 and hub.position == (4, 0) and hub.ready)
        await hub.stop()
        return taken(client)

    got = asyncio.run(scenario())
    assert got == [("reset", None), ("snapshot", "4-0")]
