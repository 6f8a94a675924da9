"""The realtime events: one union on `type`, decoded by one function, as published."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from backend.bus import events
from backend.bus.ingest import Outcome, Status
from backend.core.events import (
    FeederConfigChanged,
    FeederStatusReported,
    SymbolUpdated,
    TickReceived,
    decode_event,
)
from backend.core.feeder_config import FeederConfig, FeederStatus
from backend.core.ticks import Tick
from tests.support.builders import (
    encoded,
    feeder_config_changed,
    feeder_status_reported,
    make_tick_received,
    make_view,
    symbol_updated,
)

T0 = 1_795_000_000_000_000


@pytest.mark.parametrize(
    "event",
    [
        symbol_updated(make_view()),
        make_tick_received(),
        feeder_config_changed(tps=5.0),
        feeder_status_reported(sent=4),
    ],
    ids=lambda e: e.type,
)
def test_every_event_round_trips_through_its_bytes(event: object) -> None:
    raw = encoded(event)  # type: ignore[arg-type]
    assert decode_event(raw) == event
    assert orjson.loads(raw)["type"] == event.type  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        b'{"symbol": "A"}',
        b'{"type": "symbol.renamed"}',
        b'{"type": "symbol.updated", "symbol": "A", "ts": "x", "view": {"last_price": 1}}',
        b'{"type": "tick.received", "symbol": "A", "ts": "x", "price": 1, "volume": 1, '
        b'"source": "s", "event_id": "e", "count": 0}',
    ],
)
def test_anything_else_is_rejected(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_event(raw)


def test_the_publisher_builds_symbol_updated_from_a_view() -> None:
    view = make_view("ETHUSDT")
    event = decode_event(events.symbol_updated("ETHUSDT", view))
    assert isinstance(event, SymbolUpdated)
    assert event == SymbolUpdated(symbol="ETHUSDT", ts=view.last_ts, view=view)
    assert events.decode(events.symbol_updated("ETHUSDT", view)) == event
    assert events.symbol_updated("ETHUSDT", view) == encoded(event)  # the very same bytes


def test_an_external_partial_view_is_published_as_given() -> None:
    raw = events.symbol_updated("EXT1", {"last_price": 42.0, "last_ts": "2026-11-21T10:00:00Z"})
    assert orjson.loads(raw) == {
        "type": "symbol.updated",
        "symbol": "EXT1",
        "ts": "2026-11-21T10:00:00Z",
        "view": {"last_price": 42.0, "last_ts": "2026-11-21T10:00:00Z"},
    }


def test_ticks_received_is_one_event_per_symbol_with_its_latest_new_tick() -> None:
    ticks = [
        Tick("a1", "A", T0 + 1, 1.0, 1.0, "s", 1, T0),
        Tick("a2", "A", T0 + 2, 2.0, 3.0, "s", 2, T0),
        Tick("b1", "B", T0 + 1, 9.0, 1.0, "s", 1, T0),
        Tick("a3", "A", T0 + 3, 3.0, 1.0, "s", 3, T0),
    ]
    outcomes = [Outcome(Status.ACCEPTED)] * 3 + [Outcome(Status.DUPLICATE)]
    outgoing = events.ticks_received(ticks, outcomes)
    assert [(o.type, o.symbol) for o in outgoing] == [
        ("tick.received", "A"),
        ("tick.received", "B"),
    ]
    decoded = [decode_event(o.payload) for o in outgoing]
    assert decoded == [
        TickReceived(
            symbol="A",
            ts="2026-11-18T11:06:40.000002Z",
            price=2.0,
            volume=3.0,
            source="s",
            event_id="a2",
            count=2,
        ),
        TickReceived(
            symbol="B",
            ts="2026-11-18T11:06:40.000001Z",
            price=9.0,
            volume=1.0,
            source="s",
            event_id="b1",
            count=1,
        ),
    ]


def test_feeder_events_carry_the_config_and_the_stamped_report() -> None:
    config = FeederConfig(symbols=["A"], sources=["s"], tps=3.0)
    changed = events.feeder_config_changed(config)
    assert (changed.type, changed.symbol) == ("feeder.config", None)
    assert decode_event(changed.payload) == FeederConfigChanged(config=config)
    report = events.feeder_status_reported(FeederStatus(feeder_id="f-1", sent=2), T0)
    assert isinstance(decode_event(events.encode(report)), FeederStatusReported)
    as_entry = events.outgoing(report)
    assert (as_entry.type, as_entry.symbol, as_entry.payload) == (
        "feeder.status", None, events.encode(report),
    )  # fmt: skip
    assert report.received_at == "2026-11-18T11:06:40Z"
    assert report.sent == 2
