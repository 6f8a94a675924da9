"""The feeder's readiness: ticks are getting answers, or it is paused."""

from __future__ import annotations

from feeder.ops import ANSWER_FRESH_S, feeder_readiness


def test_a_fresh_answer_is_ready():
    state = feeder_readiness(now=100.0, started_at=0.0, last_answer_at=99.0, paused=False)
    assert state.ready and state.reason == "answered"


def test_no_answer_for_too_long_is_not_ready():
    late = 50.0 + ANSWER_FRESH_S + 1
    state = feeder_readiness(now=late, started_at=0.0, last_answer_at=50.0, paused=False)
    assert not state.ready and "no answer" in state.reason


def test_a_new_feeder_gets_a_grace_then_must_be_answered():
    assert feeder_readiness(now=1.0, started_at=0.0, last_answer_at=None, paused=False).ready
    late = ANSWER_FRESH_S + 1
    assert not feeder_readiness(now=late, started_at=0.0, last_answer_at=None, paused=False).ready


def test_a_paused_feeder_is_ready_without_answers():
    assert feeder_readiness(now=1e6, started_at=0.0, last_answer_at=None, paused=True).ready
