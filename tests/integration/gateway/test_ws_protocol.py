"""The gateway's WebSocket through a real gateway process: hello, subscribe / unsubscribe with
a snapshot of newly followed symbols, the resume op, and bad ops answered without closing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis import Redis

from backend.settings import Settings
from tests.integration.gateway.streams import FAST, Publisher, open_ws, receive, receive_until
from tests.support.processes import Processes

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher(redis_client: Redis, settings: Settings) -> Publisher:
    return Publisher(redis_client, settings)


def is_event(event_id: str) -> Any:
    return lambda m: m["event"] == "tick.received" and m["data"]["event_id"] == event_id


def test_hello_then_a_snapshot_then_live(procs: Processes, publisher: Publisher) -> None:
    view = publisher.view("AAA", 1.0)
    procs.start_gateway(extra_env=FAST)
    with open_ws(procs.gateway_url + "/ws") as socket:
        hello, snapshot = receive(socket), receive(socket)
        (tick,) = publisher.ticks("AAA", 1)
        live = receive(socket)
    assert hello == {"event": "hello", "data": {"heartbeat_s": 0.3, "queue": 1000}}
    assert snapshot["event"] == "snapshot" and snapshot["id"] == snapshot["data"]["at"]
    assert snapshot["data"]["views"] == {"AAA": view}
    assert live["event"] == "tick.received" and live["data"]["event_id"] == tick
    assert live["id"] > snapshot["id"]


def test_subscribe_and_unsubscribe_change_what_the_connection_gets(
    procs: Processes, publisher: Publisher
) -> None:
    publisher.view("AAA", 1.0)
    bbb = publisher.view("BBB", 2.0)
    publisher.view("CCC", 3.0)
    procs.start_gateway(extra_env=FAST)
    with open_ws(procs.gateway_url + "/ws?symbols=AAA") as socket:
        assert receive(socket)["event"] == "hello"
        assert list(receive(socket)["data"]["views"]) == ["AAA"]

        socket.send(orjson.dumps({"op": "subscribe", "symbols": ["BBB"]}).decode())
        answers = [receive(socket), receive(socket)]
        by_kind = {m["event"]: m for m in answers}
        assert by_kind["subscribed"]["data"] == {"symbols": ["AAA", "BBB"], "types": None}
        assert by_kind["snapshot"]["data"]["views"] == {"BBB": bbb}  # only the new symbol
        publisher.ticks("CCC", 1)  # not followed
        wanted = publisher.ticks("BBB", 1) + publisher.ticks("AAA", 1)
        got = receive_until(socket, is_event(wanted[-1]))
        assert [m["data"]["event_id"] for m in got] == wanted

        socket.send(orjson.dumps({"op": "unsubscribe", "symbols": ["AAA"]}).decode())
        subscribed = receive(socket)
        assert subscribed["event"] == "subscribed" and subscribed["data"]["symbols"] == ["BBB"]
        publisher.ticks("AAA", 2)
        publisher.view("AAA", 1.5)
        marker = publisher.ticks("BBB", 1)
        got = receive_until(socket, is_event(marker[0]))
        assert [m["data"]["symbol"] for m in got] == ["BBB"]  # nothing of AAA any more

        socket.send(orjson.dumps({"op": "subscribe", "symbols": ["*"]}).decode())
        answers = [receive(socket), receive(socket)]
        by_kind = {m["event"]: m for m in answers}
        assert by_kind["subscribed"]["data"]["symbols"] is None
        assert set(by_kind["snapshot"]["data"]["views"]) == {"AAA", "BBB", "CCC"}


def test_the_resume_op_replays_exactly_the_events_after_its_id(
    procs: Processes, publisher: Publisher
) -> None:
    procs.start_gateway(extra_env=FAST)
    with open_ws(procs.gateway_url + "/ws") as socket:
        receive(socket), receive(socket)  # hello, snapshot
        sent = publisher.ticks("AAA", 6)
        seen = receive_until(socket, is_event(sent[-1]))
        socket.send(orjson.dumps({"op": "resume", "after": seen[1]["id"]}).decode())
        resumed = receive(socket)
        assert resumed == {"event": "resumed", "data": {"after": seen[1]["id"]}}
        replay = receive_until(socket, is_event(sent[-1]))
        assert [m["id"] for m in replay] == [m["id"] for m in seen[2:]]
        more = publisher.ticks("AAA", 2)
        live = receive_until(socket, is_event(more[-1]))
        assert [m["data"]["event_id"] for m in live] == more


def test_the_resume_op_with_an_aged_out_id_resets_then_snapshots(
    procs: Processes, publisher: Publisher
) -> None:
    view = publisher.view("AAA", 1.0)
    publisher.ticks("AAA", 3)
    entries: Any = publisher.redis.xrange(publisher.ring.key)
    publisher.redis.xtrim(publisher.ring.key, minid=entries[2][0].decode(), approximate=False)
    procs.start_gateway(extra_env=FAST)
    with open_ws(procs.gateway_url + "/ws") as socket:
        receive(socket), receive(socket)  # hello, snapshot
        old = entries[0][0].decode()
        socket.send(orjson.dumps({"op": "resume", "after": old}).decode())
        got = [receive(socket) for _ in range(3)]
    assert [m["event"] for m in got] == ["resumed", "reset", "snapshot"]
    assert got[1]["data"]["after"] == old and "id" not in got[1]
    assert got[2]["data"]["views"] == {"AAA": view}


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"op": "subscribe", "symbols": []}, "subscribe.symbols"),
        ({"op": "resume", "after": "yesterday"}, "resume.after"),
        ({"op": "unsubscribe", "symbols": ["AAA"]}, "symbols"),  # following every symbol
        ("not json at all", "op"),
    ],
)
def test_a_bad_op_gets_an_error_naming_the_field_and_the_connection_stays(
    procs: Processes, publisher: Publisher, message: Any, field: str
) -> None:
    procs.start_gateway(extra_env=FAST)
    with open_ws(procs.gateway_url + "/ws") as socket:
        receive(socket), receive(socket)  # hello, snapshot
        socket.send(message if isinstance(message, str) else orjson.dumps(message).decode())
        error = receive(socket)
        assert error["event"] == "error" and error["data"]["field"] == field
        assert error["data"]["reason"]
        (tick,) = publisher.ticks("AAA", 1)
        assert receive(socket)["data"]["event_id"] == tick
