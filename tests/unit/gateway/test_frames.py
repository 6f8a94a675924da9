"""The wire encodings: an SSE frame and a WebSocket message per event, and the gateway's own."""

from __future__ import annotations

import orjson

from backend.core.realtime import MISSED, RESET, Missed, Reset
from backend.gateway.frames import HEARTBEAT, Control, Event, sse_preamble
from tests.unit.gateway.items import tick_entry


def test_an_event_as_sse_carries_its_ring_id_type_and_json() -> None:
    event = Event(tick_entry(17, "A"))
    assert event.sse == (
        b'id: 17-0\nevent: tick.received\ndata: {"type":"tick.received","symbol":"A","n":17}\n\n'
    )
    assert event.sse is event.sse  # built once, shared by every client


def test_an_event_as_websocket_json() -> None:
    event = Event(tick_entry(17, "A"))
    assert orjson.loads(event.ws) == {
        "id": "17-0",
        "event": "tick.received",
        "data": {"type": "tick.received", "symbol": "A", "n": 17},
    }


def test_a_control_without_an_id_has_no_id_line_nor_key() -> None:
    reset = Control.of(RESET, Reset(after="1-0", reason="aged out"))
    assert reset.sse == b'event: reset\ndata: {"after":"1-0","reason":"aged out"}\n\n'
    assert orjson.loads(reset.ws) == {
        "event": "reset",
        "data": {"after": "1-0", "reason": "aged out"},
    }


def test_a_control_at_a_ring_position_carries_it() -> None:
    missed = Control.of(MISSED, Missed(first="1-0", last="3-0", count=3), at=(3, 0))
    assert missed.sse.startswith(b"id: 3-0\nevent: missed\n")
    assert orjson.loads(missed.ws)["id"] == "3-0"


def test_the_preamble_and_heartbeat_are_sse_fields_and_comments() -> None:
    assert sse_preamble(2000) == b"retry: 2000\n: connected\n\n"
    assert HEARTBEAT.startswith(b":") and HEARTBEAT.endswith(b"\n\n")
