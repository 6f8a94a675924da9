"""The replay's pure rules: pacing on event time, how history is cut into groups, controls."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from backend.core.replay import (
    Anchor,
    ControlError,
    Cursor,
    RateMark,
    ReplayRecord,
    ReplayRequest,
    apply_control,
    due_at,
    eta_s,
    group_width_us,
    groups,
    rebased,
)
from backend.core.ticks import Tick

BASE = {"symbols": ["BTCUSDT"], "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}


def tick(ts_us: int, event_id: str = "", symbol: str = "AAA") -> Tick:
    return Tick(event_id or f"e{ts_us}", symbol, ts_us, 100.0, 1.0, "src", None, ts_us)


def record(**fields: Any) -> ReplayRecord:
    base: dict[str, Any] = {
        "id": "r1", "symbols": ["AAA"], "from_us": 0, "to_us": 10, "speed": 1.0,
        "alerts": "off", "created_us": 0, "expires_us": 100,
    }  # fmt: skip
    return ReplayRecord(**(base | fields))


# --- the request ---------------------------------------------------------------------------
def test_a_request_sorts_and_dedups_symbols_and_defaults_to_max_without_alerts() -> None:
    request = ReplayRequest.model_validate(BASE | {"symbols": ["B", "A", "B"]})
    assert request.symbols == ["A", "B"]
    assert request.speed == "max" and request.alerts == "off"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"speed": 0}, "speed"),
        ({"speed": 1001}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"to": "2025-12-31T00:00:00Z"}, "to"),
        ({"from": "2026-01-01T00:00:00"}, "from"),
        ({"symbols": ["lower"]}, "symbols"),
        ({"alerts": "sandbox"}, "alerts"),
        ({"rule_ids": ["x"]}, "alerts"),
        ({"alerts": "sandbox", "rules": [{"name": "n", "symbol": "ETH", "field": "last_price",
                                          "condition": "above", "value": 1}]}, "rules"),
    ],
)  # fmt: skip
def test_a_bad_request_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReplayRequest.model_validate(BASE | change)
    assert field in str(caught.value)


# --- pacing ----------------------------------------------------------------------------------
def test_a_tick_is_due_at_its_event_time_divided_by_speed() -> None:
    anchor = Anchor(event_us=1_000_000, wall_us=50)
    assert due_at(anchor, 1_000_000, 10) == 50
    assert due_at(anchor, 11_000_000, 10) == 50 + 1_000_000
    assert due_at(anchor, 11_000_000, "max") == 50


def test_a_replay_that_fell_behind_is_rebased_instead_of_rushing() -> None:
    anchor = Anchor(event_us=0, wall_us=0)
    # due at 1 s, now 1.5 s: within the slack, kept (it catches up by not sleeping).
    assert rebased(anchor, 1_000_000, 1_500_000, 1, slack_us=1_000_000) == anchor
    # now 2.5 s: more than the slack late, the next tick is due now.
    assert rebased(anchor, 1_000_000, 2_500_000, 1, slack_us=1_000_000) == Anchor(
        event_us=1_000_000, wall_us=2_500_000
    )
    assert rebased(anchor, 1_000_000, 9_000_000, "max", slack_us=0) == anchor


@given(
    st.lists(st.integers(0, 10_000_000), min_size=1, max_size=200),
    st.floats(1, 1000),
)
def test_pacing_never_makes_a_later_tick_due_earlier(times: list[int], speed: float) -> None:
    anchor = Anchor(event_us=0, wall_us=123)
    dues = [due_at(anchor, t, speed) for t in sorted(times)]
    assert dues == sorted(dues)


# --- groups ----------------------------------------------------------------------------------
def test_max_groups_are_cut_by_size_only() -> None:
    ticks = [tick(t) for t in range(12)]
    assert [len(g) for g in groups(ticks, 0, None, cap=5)] == [5, 5, 2]


def test_paced_groups_follow_the_event_time_grid() -> None:
    ticks = [tick(t) for t in (0, 1, 9, 10, 25, 26, 27, 60)]
    cut = [[t.ts_us for t in g] for g in groups(ticks, 0, 10, cap=2)]
    assert cut == [[0, 1], [9], [10], [25, 26], [27], [60]]
    assert group_width_us(10) == 500_000 and group_width_us("max") is None


@given(st.lists(st.integers(0, 1_000), min_size=1, max_size=300, unique=True), st.data())
def test_a_rerun_from_any_committed_cursor_cuts_the_same_groups(
    times: list[int], data: st.DataObject
) -> None:
    """What makes a replay exact after a crash: resuming right after any group boundary cuts
    the same groups as the first run did from there."""
    ticks = [tick(t) for t in sorted(times)]
    width = data.draw(st.sampled_from([None, 7, 50]))
    first = list(groups(ticks, 0, width, cap=4))
    k = data.draw(st.integers(0, len(first) - 1))
    done = sum(len(g) for g in first[:k])
    assert list(groups(ticks[done:], 0, width, cap=4)) == first[k:]
    assert [t for g in first for t in g] == ticks


# --- controls and status ---------------------------------------------------------------------
def test_a_running_replay_is_only_told_what_is_wanted() -> None:
    running = record(state="running")
    paused, send = apply_control(running, "pause", 5)
    assert (paused.state, paused.wanted, send) == ("running", "paused", False)
    resumed, send = apply_control(paused, "resume", 6)
    assert (resumed.state, resumed.wanted, send) == ("running", None, False)
    cancelled, _ = apply_control(running, "cancel", 7)
    assert (cancelled.state, cancelled.wanted) == ("running", "cancelled")


def test_a_paused_replay_resumes_with_a_new_generation_and_a_message() -> None:
    paused = record(state="paused", generation=2, step=7)
    resumed, send = apply_control(paused, "resume", 9)
    assert (resumed.state, resumed.generation, resumed.step, send) == ("queued", 3, 7, True)
    cancelled, send = apply_control(paused, "cancel", 9)
    assert (cancelled.state, cancelled.finished_us, send) == ("cancelled", 9, False)


@pytest.mark.parametrize("state", ["done", "cancelled", "failed"])
@pytest.mark.parametrize("control", ["pause", "resume", "cancel"])
def test_a_finished_replay_takes_no_control(state: str, control: Any) -> None:
    with pytest.raises(ControlError):
        apply_control(record(state=state), control, 1)


def test_status_reports_rate_and_eta_from_its_rate_mark() -> None:
    running = record(
        state="running", ticks_total=1_000, ticks_applied=300,
        rate_since=RateMark(applied=100, wall_us=1_000_000),
        cursor=Cursor(ts_us=5, event_id="e5"),
    )  # fmt: skip
    status = running.status(now_us=3_000_000)
    assert status.rate == 100.0  # 200 ticks in 2 s
    assert status.eta_s == 7.0
    assert status.cursor == "1970-01-01T00:00:00.000005Z"
    assert record(state="paused", ticks_total=10).status(5).eta_s is None
    assert eta_s(10, 4, 0) is None and eta_s(10, 4, 2) == 3
