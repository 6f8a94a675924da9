"""Observation extraction (which ticks become the latest; what a view observation carries) and
the evaluation memory's JSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.core.alerts.conditions import RuleIndex, RuleState, SymbolMemory
from backend.core.alerts.observations import (
    STREAM_START,
    StoredMemory,
    decode_observations,
    encode_observations,
    tick_observations,
    view_observation,
)
from backend.core.alerts.rules import AlertRule
from backend.core.ticks import Tick
from backend.core.view import build_view
from backend.core.window import Entry, ListStore, WindowState, merge

T0 = 1_700_000_000_000_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(i: int, price: float, event_id: str | None = None, ts: int | None = None) -> Entry:
    return (T0 + i * 1_000 if ts is None else ts, event_id or f"e{i:03d}", price, 1.0, "s")


def test_every_tick_after_the_prior_latest_is_observed_in_order() -> None:
    added = [entry(3, 103.0), entry(1, 101.0), entry(2, 150.0)]
    obs = tick_observations(entry(0, 100.0), added)
    assert [(o.event_id, o.values) for o in obs] == [
        ("e001", {"last_price": 101.0}),
        ("e002", {"last_price": 150.0}),  # a spike inside the batch is seen
        ("e003", {"last_price": 103.0}),
    ]
    assert all(o.kind == "tick" and o.price == o.values["last_price"] for o in obs)


def test_a_late_tick_is_never_an_observation() -> None:
    prior = entry(5, 100.0)
    assert tick_observations(prior, [entry(4, 200.0), entry(5, 200.0, "e000")]) == []
    # same timestamp, later event_id: after the latest in (ts, event_id) order
    later = tick_observations(prior, [entry(5, 99.0, "e999")])
    assert [o.event_id for o in later] == ["e999"]


def test_no_prior_latest_observes_all_and_duplicates_once() -> None:
    obs = tick_observations(None, [entry(1, 1.0), entry(1, 1.0), entry(0, 2.0)])
    assert [o.event_id for o in obs] == ["e000", "e001"]


def test_through_merge_only_what_the_merge_added_after_the_latest() -> None:
    """The extraction as calc calls it: prior latest and the merge's delta."""
    store = ListStore()
    state = WindowState("S")
    ticks = [Tick(f"e{i}", "S", T0 + i * 1_000, 100.0 + i, 1.0, "s", None, 0) for i in range(3)]
    state, delta, _ = merge(state, store, ticks)
    store.apply(delta)
    late_and_new = [
        Tick("late", "S", T0 - 5, 500.0, 1.0, "s", None, 0),
        Tick("new", "S", T0 + 10_000, 90.0, 1.0, "s", None, 0),
    ]
    prior = state.last
    _, delta, _ = merge(state, store, late_and_new)
    assert [o.event_id for o in tick_observations(prior, delta.add)] == ["new"]


def test_view_observation_carries_ws_numeric_fields_and_flags() -> None:
    store = ListStore()
    ticks = [
        Tick("a", "S", T0, 100.0, 0.0, "s", None, T0),
        Tick("b", "S", T0 + 1, 102.0, 0.0, "s", None, T0),
    ]
    state, _, _ = merge(WindowState("S"), store, ticks)
    view = build_view(state, T0 + 60_000_000, stale_after_s=10.0)
    assert view is not None and view.vwap_1m is None  # no volume: no vwap
    obs = view_observation(view, ts_us=T0 + 1, gap_opened=True)
    assert obs.kind == "view" and obs.event_id == "b" and obs.ts_us == T0 + 1
    assert set(obs.values) == {
        "change_1m_pct", "volume_1m", "trades_1m", "sma_10", "high_1m", "low_1m", "gaps_open",
        "stale", "gap_opened",
    }  # fmt: skip
    assert obs.values["trades_1m"] == 2.0 and obs.values["high_1m"] == 102.0
    assert obs.values["stale"] == 1.0 and obs.values["gap_opened"] == 1.0
    assert "last_price" not in obs.values
    assert decode_observations(encode_observations([obs, obs])) == [obs, obs]


def test_memory_round_trips_through_json() -> None:
    memory = SymbolMemory(
        prev={"last_price": 101.5, "volume_1m": 3.0},
        rules={
            "r1": RuleState(seen=True, last_fired_us=T0, last_bar=28_333_333, done=False),
            "r2": RuleState(seen=True, done=True),
        },
    )
    stored = StoredMemory(cursor="1700000000000-7", memory=memory, versions={"r1": 3, "r2": 1})
    back = StoredMemory.from_json(stored.to_json())
    assert back == stored
    assert StoredMemory.from_json(None) == StoredMemory(STREAM_START, SymbolMemory())


def test_the_compact_rule_state_covers_every_field() -> None:
    """The memory stores RuleState as [seen, last_fired_us, last_bar, done]: a field added to
    RuleState must be added there too, or it would be dropped silently."""
    assert list(RuleState.model_fields) == ["seen", "last_fired_us", "last_bar", "done"]


def test_a_rule_whose_version_moved_starts_afresh() -> None:
    memory = SymbolMemory(
        prev={"last_price": 101.0},
        rules={"same": RuleState(seen=True, done=True), "edited": RuleState(seen=True, done=True),
               "gone": RuleState(seen=True)},
    )  # fmt: skip
    stored = StoredMemory("1-1", memory, versions={"same": 1, "edited": 1, "gone": 1})
    index = RuleIndex([make_rule("same", version=1), make_rule("edited", version=2)])
    fresh = stored.for_rules(index)
    assert fresh.prev == {"last_price": 101.0}
    assert set(fresh.rules) == {"same"}
    after = StoredMemory.after("1-2", SymbolMemory(rules={"edited": RuleState(seen=True)}), index)
    assert after.versions == {"edited": 2}


def make_rule(rule_id: str, version: int) -> AlertRule:
    return AlertRule.model_validate({
        "id": rule_id, "version": version, "name": rule_id, "symbol": "S", "field": "last_price",
        "condition": "above", "value": 100.0, "created_at": NOW, "updated_at": NOW,
    })  # fmt: skip
