"""Open gaps are a pure function of the set of sequences seen, whatever the order and batching."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.core.gaps import SeqTrack, add_seq, holes, open_gaps, track
from tests import reference


@settings(max_examples=300, deadline=None)
@given(seqs=st.lists(st.integers(0, 60), max_size=40), seed=st.integers(0, 2**32))
def test_any_order_and_batching_give_the_reference_gaps(seqs, seed):
    rng = random.Random(seed)
    shuffled = seqs + rng.sample(seqs, k=len(seqs) // 3)  # with duplicates
    rng.shuffle(shuffled)
    state = SeqTrack("src")
    now = 0
    while shuffled:
        cut = rng.randint(1, len(shuffled))
        now += 1
        state, _ = track(state, shuffled[:cut], now)
        shuffled = shuffled[cut:]
    assert [(g.from_seq, g.to_seq) for g in state.open] == reference.gaps(set(seqs))
    assert holes(state.intervals) == reference.gaps(set(seqs))


def test_a_late_tick_shrinks_then_closes_a_gap_keeping_detected_at():
    state, change = track(SeqTrack("s"), [1, 2, 6], now_us=100)
    assert change.opened == 1 and [
        (g.from_seq, g.to_seq, g.detected_at_us) for g in state.open
    ] == [(3, 5, 100)]
    state, change = track(state, [4], now_us=200)  # splits: 3 and 5 remain, both detected at 100
    assert change.opened == 1 and change.closed == 0  # the second fragment is a new record
    assert [(g.from_seq, g.to_seq, g.detected_at_us) for g in state.open] == [
        (3, 3, 100),
        (5, 5, 100),
    ]
    state, change = track(state, [3, 5], now_us=300)
    assert change.closed == 2 and state.open == []
    assert [(g.from_seq, g.to_seq, g.closed_at_us) for g in state.closed] == [
        (5, 5, 300),
        (3, 3, 300),
    ]
    state, change = track(state, [10], now_us=400)
    assert change.opened == 1 and open_gaps([state]) == [("s", 7, 9)]


def test_json_round_trip_and_idempotence():
    state, _ = track(SeqTrack("s"), [1, 5, 9], now_us=1)
    again, change = track(state, [1, 5], now_us=2)
    assert again is state and change.opened == change.closed == 0
    assert SeqTrack.from_json("s", state.to_json()) == state


def test_add_seq_merges_neighbours():
    iv: list[tuple[int, int]] = []
    for n in (5, 7, 6, 1, 2, 9):
        iv = add_seq(iv, n)
    assert iv == [(1, 2), (5, 7), (9, 9)]
