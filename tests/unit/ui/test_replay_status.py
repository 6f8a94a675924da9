"""How the Replay page words a replay: progress, ETA, controls by state, tables."""

from __future__ import annotations

import pytest

from backend.core.replay import TERMINAL_STATES
from tests.support.builders import make_view
from tests.unit.ui.alert_samples import make_firing
from tests.unit.ui.replay_samples import REPLAY_ID, make_replay
from ui.replay_status import (
    Controls,
    controls,
    duration_text,
    eta_text,
    firing_rows,
    pick,
    progress_fraction,
    progress_text,
    replay_label,
    replay_rows,
    view_rows,
)


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        ("queued", Controls(pause=True, resume=False, cancel=True)),
        ("running", Controls(pause=True, resume=False, cancel=True)),
        ("paused", Controls(pause=False, resume=True, cancel=True)),
        ("done", Controls(pause=False, resume=False, cancel=False)),
        ("cancelled", Controls(pause=False, resume=False, cancel=False)),
        ("failed", Controls(pause=False, resume=False, cancel=False)),
    ],
)
def test_buttons_are_enabled_by_state_as_the_api_allows(state: str, allowed: Controls) -> None:
    assert controls(state) == allowed
    assert allowed.cancel == (state not in TERMINAL_STATES)


def test_progress_and_eta_while_running() -> None:
    replay = make_replay()
    assert progress_fraction(replay) == pytest.approx(0.4)
    assert progress_text(replay) == (
        "1,200 / 3,000 ticks (40%) · 850 ticks/s · ETA 2 s · 4 would-have-fired"
    )


def test_progress_words_fit_each_state() -> None:
    done = make_replay(state="done", ticks_applied=3_000, eta_s=None, firings=0)
    assert progress_fraction(done) == 1.0
    assert progress_text(done) == "3,000 / 3,000 ticks (100%) · finished"
    assert eta_text(make_replay(state="paused", rate=0.0)) == "paused"
    assert eta_text(make_replay(state="queued")) == "waiting for the history service"
    assert eta_text(make_replay(state="failed")) == "failed"
    assert eta_text(make_replay(eta_s=None)) == "ETA —"
    # An empty range: nothing to do is done, and nothing is divided by zero.
    empty = make_replay(state="done", ticks_total=0, ticks_applied=0)
    assert progress_fraction(empty) == 1.0
    assert progress_fraction(make_replay(state="queued", ticks_total=0, ticks_applied=0)) == 0.0
    # Applied never shows beyond the total.
    assert progress_fraction(make_replay(ticks_applied=4_000)) == 1.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.4, "0 s"), (42, "42 s"), (60, "1 min"), (185, "3 min 5 s"),
     (7_800, "2 h 10 min"), (7_200, "2 h"), (-3, "0 s")],
)  # fmt: skip
def test_durations(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


def test_list_rows_and_the_pick() -> None:
    newer = make_replay(id="11111111-aaaa", state="paused", speed=5.0, rate=0.0)
    older = make_replay(state="done", ticks_applied=3_000)
    [row, _] = replay_rows([newer, older])
    assert row["id"] == "11111111" and row["speed"] == "5×" and row["rate"] == "—"
    assert row["progress"] == 40.0 and row["applied"] == "1,200 / 3,000"
    assert "paused · AAA, BBB" in replay_label(newer)
    # The one asked for while listed, else the newest; nothing when there is none.
    assert pick([newer, older], REPLAY_ID) == REPLAY_ID
    assert pick([newer, older], "gone") == newer.id
    assert pick([newer, older], None) == newer.id
    assert pick([], REPLAY_ID) is None


def test_view_rows_put_the_replay_beside_the_live_view() -> None:
    replayed = make_view("AAA", last_price=101.25, ticks_total=600)
    rows = {r["field"]: r for r in view_rows(replayed, None)}
    assert rows["last_price"] == {"field": "last_price", "replay": "101.25", "live": "—"}
    assert rows["ticks_total"]["replay"] == "600"
    assert [r["field"] for r in view_rows(None, None)][:3] == [
        "last_price",
        "last_ts",
        "ticks_total",
    ]


def test_firing_rows_in_order_and_by_symbol() -> None:
    firings = [
        make_firing(alert_id="a-1", symbol="AAA", observed=100.5),
        make_firing(alert_id="a-2", symbol="BBB", observed=7.0),
    ]
    rows = firing_rows(firings)
    assert [r["symbol"] for r in rows] == ["AAA", "BBB"]
    assert rows[0]["what"] == "last_price crosses above 65,000"
    assert (rows[0]["observed"], rows[0]["price"], rows[0]["event_id"]) == (100.5, 65_012.0, "e-1")
    assert [r["symbol"] for r in firing_rows(firings, "BBB")] == ["BBB"]
