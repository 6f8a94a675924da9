"""The rebuild's pure rules: what calc does with a batch, the skip set, B minus R, D, and that
merging R then B minus R (in chunks, in any split) gives the reference view of R ∪ B."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from backend.core.rebuild import (
    CalcAction,
    RebuildRequest,
    calc_action,
    drop_skipped,
    not_in,
    pending_duplicates,
)
from backend.core.ticks import Tick
from backend.core.view import build_view
from backend.core.window import ListStore, WindowState, merge
from tests import reference

T0 = 1_700_000_000_000_000


def tick(event_id: str, ts_s: float = 0.0, price: float = 100.0, volume: float = 1.0) -> Tick:
    ts = T0 + int(ts_s * 1_000_000)
    return Tick(event_id, "AAA", ts, price, volume, "x", None, ts)


@pytest.mark.parametrize(
    ("fenced", "has_state", "known", "action"),
    [
        (False, True, True, CalcAction.MERGE),
        (False, False, False, CalcAction.MERGE),  # a new symbol starts from empty
        (False, False, True, CalcAction.OPEN_FENCE),  # a known symbol lost its state
        (True, True, True, CalcAction.BUFFER),
        (True, False, True, CalcAction.BUFFER),  # already fenced: no second rebuild asked
        (True, False, False, CalcAction.BUFFER),
    ],
)
def test_calc_action(fenced: bool, has_state: bool, known: bool, action: CalcAction) -> None:
    assert calc_action(fenced=fenced, has_state=has_state, known=known) is action


def test_drop_skipped_drops_each_listed_tick_once_and_forgets_it() -> None:
    ticks = [tick("a"), tick("b"), tick("c")]
    kept, left, dropped = drop_skipped(frozenset({"b", "z"}), ticks)
    assert [t.event_id for t in kept] == ["a", "c"]
    assert left == frozenset({"z"})  # still in flight
    assert dropped == 1
    assert drop_skipped(frozenset(), ticks) == (ticks, frozenset(), 0)
    kept, left, dropped = drop_skipped(left, [tick("z")])
    assert (kept, left, dropped) == ([], frozenset(), 1)


def test_b_minus_r_and_d() -> None:
    buffered = [tick("r1"), tick("b1"), tick("b1"), tick("b2")]
    assert [t.event_id for t in not_in(buffered, {"r1"})] == ["b1", "b2"]
    d = pending_duplicates(["r1", "b2", "new"], {"r1", "r2"}, ["b1", "b2"])
    assert d == frozenset({"r1", "b2"})  # "new" is in neither: calc merges it later


def test_a_bad_symbol_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        RebuildRequest.model_validate({"symbols": ["BTCUSDT", "btc usd"]})
    assert caught.value.errors()[0]["loc"] == ("symbols",)
    assert RebuildRequest.model_validate({"symbols": ["B", "A", "B"]}).symbols == ["A", "B"]
    assert RebuildRequest.model_validate({}).symbols is None
    with pytest.raises(ValidationError):
        RebuildRequest.model_validate({"symbols": []})


def test_skip_survives_the_state_json_and_is_absent_when_empty() -> None:
    state = WindowState(symbol="AAA", skip=frozenset({"b", "a"}))
    assert WindowState.from_json(state.to_json(), "AAA").skip == frozenset({"a", "b"})
    assert b"skip" not in WindowState(symbol="AAA").to_json()


ticks_strategy = st.lists(
    st.tuples(
        st.integers(0, 40),  # event id: repeats are the same tick (first write wins)
        st.floats(0, 200),  # seconds: the 60 s window slides
        st.floats(1, 1_000).map(lambda p: round(p, 2)),
        st.floats(0.001, 50).map(lambda v: round(v, 3)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ticks=ticks_strategy, split=st.integers(0, 60), chunk=st.integers(1, 20))
def test_merging_r_in_chunks_then_b_minus_r_equals_the_reference(
    ticks: list[tuple[int, float, float, float]], split: int, chunk: int
) -> None:
    """R in (ts, event_id) order, `chunk` at a time, then B (overlapping R) minus R, unordered:
    the view of R ∪ B, exactly as the naive reference computes it."""
    first: dict[str, Tick] = {}
    for n, ts_s, price, volume in ticks:
        first.setdefault(f"e{n}", tick(f"e{n}", ts_s, price, volume))
    everything = list(first.values())
    r = sorted(everything[:split], key=lambda t: (t.ts_us, t.event_id))
    b = everything[max(0, split - 3) :]  # B may hold ticks R read too
    state, store, ids = WindowState(symbol="AAA"), ListStore(), set()
    for start in range(0, len(r), chunk):
        part = not_in(r[start : start + chunk], ids)
        ids.update(t.event_id for t in part)
        state, delta, _ = merge(state, store, part, 0)
        store.apply(delta)
    extra = not_in(b, ids)
    if extra:
        state, delta, _ = merge(state, store, extra, 0)
        store.apply(delta)
    view = build_view(state, 0)
    ref = reference.view(everything)
    assert view is not None
    got = view.model_dump()
    for name in ("ticks_total", "last_event_id", "trades_1m", "high_1m", "low_1m", "open_1m"):
        assert got[name] == ref[name], name
    for name in ("vwap_1m", "volume_1m", "sma_10"):
        assert reference.close(got[name], ref[name]), name
    assert [e["event_id"] for e in got["last_10"]] == ref["last_10"]
