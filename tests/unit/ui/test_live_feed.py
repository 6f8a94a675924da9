"""LiveFeed's state keeping, driven through `receive()` / `ingest()` without a gateway or a
thread: the messages are the gateway's (`backend.core.realtime`) and the bus events it relays."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from backend.core.realtime import Missed, Reset, Snapshot
from tests.support.builders import (
    encoded,
    feeder_config_changed,
    feeder_status_reported,
    make_tick_received,
    make_view,
    symbol_updated,
)
from ui.live_feed import LiveFeed


def feed(**kwargs: Any) -> LiveFeed:
    return LiveFeed("http://127.0.0.1:1", **kwargs)  # never started


def updated(symbol: str, ticks: int, updated_at: str, price: float = 1.0) -> bytes:
    view = make_view(symbol, last_price=price, ticks_total=ticks, updated_at=updated_at)
    return encoded(symbol_updated(view))


def tick(symbol: str) -> bytes:
    return encoded(make_tick_received(symbol, ts="2025-03-01T12:00:00+00:00"))


def test_symbol_updated_stores_the_view_and_bumps_version() -> None:
    live = feed()
    before = live.version
    live.ingest(updated("BTCUSDT", 3, "2025-03-01T12:00:00+00:00", price=67_000.0))
    snap = live.snapshot()
    assert snap.version > before
    assert snap.views["BTCUSDT"].last_price == 67_000.0
    assert snap.events_received == 1
    assert snap.events_by_type == {"symbol.updated": 1}
    assert snap.last_event_at is not None
    assert "view" not in snap.events[0]
    assert snap.events[0]["symbol"] == "BTCUSDT"


def test_tick_received_is_counted_but_does_not_create_a_view() -> None:
    live = feed()
    live.ingest(tick("ETHUSDT"))
    snap = live.snapshot()
    assert snap.views == {}
    assert snap.events_by_type == {"tick.received": 1}


def test_the_view_received_last_wins_without_any_freshness_comparison() -> None:
    # The ring's order is authoritative (calc refuses to store an older view, so the ring never
    # carries one after a newer one): whatever arrives last is the symbol's view.
    live = feed()
    live.receive("symbol.updated", updated("A", 5, "2025-03-01T12:00:05+00:00", 5.0), "1-0")
    live.receive("symbol.updated", updated("A", 4, "2025-03-01T12:00:04+00:00", 4.0), "2-0")
    assert live.snapshot().views["A"].last_price == 4.0
    assert live.last_id == "2-0"


def test_bad_messages_are_counted_and_dropped() -> None:
    live = feed()
    partial = orjson.dumps(
        {"type": "symbol.updated", "symbol": "A", "ts": "2025-03-01T12:00:00Z", "view": {"x": 1}}
    )
    for raw in (b"not json", b"[1, 2]", b'{"no": "type"}', b'{"type": "symbol.updated"}', partial):
        live.ingest(raw)
    snap = live.snapshot()
    assert snap.bad_events == 5
    assert snap.views == {}


def test_views_and_events_are_bounded() -> None:
    live = feed(max_symbols=3, max_events=5)
    for index in range(10):
        live.ingest(updated(f"S{index}", 1, "2025-03-01T12:00:00+00:00"))
    snap = live.snapshot()
    assert sorted(snap.views) == ["S7", "S8", "S9"]  # the least recently updated go first
    assert [event["symbol"] for event in snap.events] == ["S9", "S8", "S7", "S6", "S5"]
    assert snap.events_received == 10


def test_snapshots_are_independent_copies() -> None:
    live = feed()
    live.ingest(updated("A", 1, "2025-03-01T12:00:00+00:00", price=1.0))
    first = live.snapshot()
    with pytest.raises(ValidationError):  # views are frozen: shared, never mutated
        first.views["A"].last_price = 999.0  # type: ignore[misc]
    first.views["B"] = make_view("B")
    first.events.clear()
    second = live.snapshot()
    assert list(second.views) == ["A"]
    assert second.views["A"].last_price == 1.0
    assert len(second.events) == 1


def test_wait_for_change_times_out_without_events() -> None:
    live = feed()
    assert live.wait_for_change(live.version, timeout=0.01) is False
    version = live.version
    live.ingest(tick("A"))
    assert live.wait_for_change(version, timeout=0.01) is True


def test_feeder_events_are_decoded_and_counted_by_type() -> None:
    live = feed()
    live.ingest(encoded(feeder_config_changed(tps=50.0)))
    live.ingest(encoded(feeder_status_reported("feeder-7", sent=3)))
    snap = live.snapshot()
    assert snap.bad_events == 0
    assert snap.events_by_type == {"feeder.config": 1, "feeder.status": 1}
    assert snap.events[0]["feeder_id"] == "feeder-7" and snap.events[0]["sent"] == 3
    assert snap.events[1]["config"]["tps"] == 50.0


def test_an_event_type_outside_the_contract_is_a_bad_event() -> None:
    live = feed()
    live.ingest(orjson.dumps({"type": "symbol.renamed", "symbol": "A"}))
    assert live.snapshot().bad_events == 1
    assert live.snapshot().events_by_type == {}


def test_alert_fired_is_kept_apart_numbered_and_not_pushed_out_by_ticks() -> None:
    from tests.unit.ui.alert_samples import fired_event

    live = feed(max_events=3)
    live.ingest(fired_event(alert_id="a-1"))
    for _ in range(5):
        live.ingest(tick("ETHUSDT"))
    live.ingest(fired_event(alert_id="a-2", rule_name="second"))
    snap = live.snapshot()
    assert snap.alerts_received == 2
    assert [(a["seq"], a["firing"]["alert_id"]) for a in snap.alerts] == [(2, "a-2"), (1, "a-1")]
    assert snap.alerts[0]["firing"]["rule_name"] == "second"
    assert snap.events_by_type["alert.fired"] == 2
    # The recent-events list (3 long) already lost a-1 to the ticks; the alerts list did not.
    assert [e["type"] for e in snap.events] == ["alert.fired", "tick.received", "tick.received"]


def test_only_the_newest_alerts_are_held() -> None:
    from tests.unit.ui.alert_samples import fired_event

    live = feed(max_alerts=2)
    for n in range(4):
        live.ingest(fired_event(alert_id=f"a-{n}"))
    snap = live.snapshot()
    assert snap.alerts_received == 4
    assert [a["seq"] for a in snap.alerts] == [4, 3]
    # The notifier's lighter read says the same.
    received, alerts = live.alert_snapshot()
    assert (received, alerts) == (4, snap.alerts)
    live.ingest(fired_event(alert_id="a-4"))
    assert live.alert_snapshot()[0] == 5


def snapshot_message(at: str, *views: Any) -> bytes:
    return Snapshot(
        at=at, views={v.symbol: v.model_dump(mode="json") for v in views}
    ).model_dump_json()


def test_a_snapshot_replaces_every_view_and_sets_the_position() -> None:
    live = feed()
    live.receive("symbol.updated", updated("OLD", 1, "2025-03-01T12:00:00+00:00"), "5-0")
    live.receive("snapshot", snapshot_message("9-3", make_view("A", last_price=1.5)), "9-3")
    snap = live.snapshot()
    assert sorted(snap.views) == ["A"]
    assert snap.views["A"].last_price == 1.5
    assert (snap.last_id, snap.snapshots) == ("9-3", 1)
    # Events after the snapshot apply on top of it.
    live.receive("symbol.updated", updated("B", 1, "2025-03-01T12:00:01+00:00", 2.0), "9-4")
    assert sorted(live.snapshot().views) == ["A", "B"]
    assert live.last_id == "9-4"


def test_a_reset_keeps_the_views_until_its_snapshot_replaces_them() -> None:
    live = feed()
    live.receive("symbol.updated", updated("GONE", 1, "2025-03-01T12:00:00+00:00"), "5-0")
    reset = Reset(after="5-0", reason="aged out").model_dump_json()
    live.receive("reset", reset, None)
    snap = live.snapshot()
    assert (snap.resets, snap.last_id, sorted(snap.views)) == (1, "5-0", ["GONE"])
    assert snap.events[0]["type"] == "reset" and snap.events[0]["reason"] == "aged out"
    live.receive("snapshot", snapshot_message("700-0", make_view("NEW")), "700-0")
    snap = live.snapshot()
    assert sorted(snap.views) == ["NEW"]
    assert snap.last_id == "700-0"
    assert snap.bad_events == 0


def test_missed_events_are_counted() -> None:
    live = feed()
    live.receive("missed", Missed(first="1-0", last="3-0", count=3).model_dump_json(), None)
    live.receive("missed", Missed(first="4-0", last="4-0", count=1).model_dump_json(), None)
    snap = live.snapshot()
    assert snap.missed == 4
    assert snap.events_by_type == {"missed": 2}
    assert snap.last_id is None


def test_a_bad_message_still_moves_the_position_on() -> None:
    live = feed()
    live.receive("symbol.updated", b"not json", "3-0")
    live.receive("snapshot", b'{"at": 1}', "4-0")
    live.receive("reset", b"{}", None)
    snap = live.snapshot()
    assert snap.bad_events == 3
    assert snap.last_id == "4-0"  # a resume must not fetch them again


def test_a_partial_view_in_a_snapshot_is_dropped_and_counted() -> None:
    live = feed()
    message = Snapshot(at="1-0", views={"A": {"x": 1}, "B": make_view("B").model_dump()})
    live.receive("snapshot", message.model_dump_json(), "1-0")
    snap = live.snapshot()
    assert sorted(snap.views) == ["B"]
    assert snap.bad_events == 1


def test_a_never_started_feed_is_neither_connected_nor_reconnecting() -> None:
    snap = feed().snapshot()
    assert (snap.connected, snap.reconnecting, snap.running) == (False, False, False)
