"""W is a pure function of the SET of ticks: any order, batching or duplication gives the same."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.core.ticks import Tick
from backend.core.view import View, build_view, comparable
from backend.core.window import LAST_N, ListStore, WindowState, merge
from tests import reference

T0 = 1_795_000_000_000_000


def tick(i: int, ts_us: int, price: float, volume: float = 1.0) -> Tick:
    return Tick(f"e{i:05d}", "BTCUSDT", ts_us, price, volume, f"src{i % 2}", i // 2, T0)


def run_batches(batches: list[list[Tick]]) -> View:
    state, store = WindowState("BTCUSDT"), ListStore()
    for batch in batches:
        state, delta, _ = merge(state, store, batch)
        store.apply(delta)
        assert store.entries == sorted(
            {e[1]: e for e in store.entries}.values(), key=lambda e: (e[0], e[1])
        )  # no entry twice
    view = build_view(state, updated_at_us=T0)
    assert view is not None
    return view


ticks_strategy = st.lists(
    st.tuples(
        st.integers(0, 180_000_000),  # within 3 minutes, so windows overlap and trim
        st.floats(0.5, 2.0, allow_nan=False).map(lambda p: round(p, 4)),
        st.floats(0.0, 5.0, allow_nan=False).map(lambda v: round(v, 3)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(raw=ticks_strategy, seed=st.integers(0, 2**32))
def test_any_order_and_batching_gives_the_same_view(raw, seed):
    # Every 7th tick never arrives, so sequence gaps are part of what must agree.
    ticks = [tick(i, T0 + ts, p, v) for i, (ts, p, v) in enumerate(raw) if i % 7 != 3]
    rng = random.Random(seed)
    in_order = run_batches([sorted(ticks, key=lambda t: t.ts_us)])

    shuffled = ticks[:]
    rng.shuffle(shuffled)
    batches: list[list[Tick]] = []
    while shuffled:
        cut = rng.randint(1, len(shuffled))
        batches.append(shuffled[:cut])
        shuffled = shuffled[cut:]
    view = run_batches(batches)
    assert comparable(view) == comparable(in_order)
    sources = {t.source for t in ticks}
    expected_gaps = 0
    for source in sources:
        seqs = {t.seq for t in ticks if t.source == source}
        expected_gaps += sum(
            1 for n in range(min(seqs), max(seqs)) if n in seqs and n + 1 not in seqs
        )
    assert view.gaps_open == expected_gaps


@settings(max_examples=200, deadline=None)
@given(raw=ticks_strategy)
def test_view_matches_reference(raw):
    ticks = [tick(i, T0 + ts, p, v) for i, (ts, p, v) in enumerate(raw)]
    view = run_batches([ticks[: len(ticks) // 2], ticks[len(ticks) // 2 :]])
    ref = reference.view(ticks)
    for name in (
        "last_price",
        "last_ts",
        "last_event_id",
        "ticks_total",
        "trades_1m",
        "high_1m",
        "low_1m",
        "open_1m",
    ):
        assert getattr(view, name) == ref[name], name
    assert [e.event_id for e in view.last_10] == ref["last_10"]
    for name in ("sma_10", "volume_1m"):
        assert abs(getattr(view, name) - ref[name]) <= 1e-9 * max(1.0, abs(ref[name]))
    if ref["vwap_1m"] is None:
        assert view.vwap_1m is None
    else:
        assert abs(view.vwap_1m - ref["vwap_1m"]) <= 1e-9


def test_duplicate_event_ids_in_a_batch_count_once():
    # Across batches, once-only is the caller's guarantee (ingest dedup + message markers).
    t = tick(1, T0, 1.0)
    view = run_batches([[t, t]])
    assert view.ticks_total == 1
    assert view.trades_1m == 1


def test_old_tick_counts_in_total_but_not_in_window():
    ticks = [tick(i, T0 + 120_000_000 + i, 2.0) for i in range(20)]
    late = tick(99, T0, 100.0)
    view = run_batches([ticks, [late]])
    assert view.ticks_total == 21
    assert view.high_1m == 2.0
    assert view.trades_1m == 20


def test_store_holds_exactly_the_window_and_state_the_last_n():
    ticks = [tick(i, T0 + i * 10_000_000, float(i)) for i in range(30)]  # every 10 s for 5 min
    state, store = WindowState("BTCUSDT"), ListStore()
    for i in range(0, 30, 7):
        state, delta, _ = merge(state, store, ticks[i : i + 7])
        store.apply(delta)
    assert [e[1] for e in store.entries] == [t.event_id for t in ticks[24:]]  # (last - 60 s, last]
    assert len(state.latest) == LAST_N
    assert state.window.count == 6 and state.window.high == 29.0 and state.window.low == 24.0
    assert state.ticks_total == 30
    assert WindowState.from_json(state.to_json(), "BTCUSDT") == state


def test_zero_volume_window_has_no_vwap():
    view = run_batches([[tick(1, T0, 1.0, 0.0), tick(2, T0 + 1, 1.5, 0.0)]])
    assert view.vwap_1m is None
    assert view.volume_1m == 0.0
    assert view.change_1m_pct == 50.0
