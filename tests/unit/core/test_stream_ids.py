"""Ring ids as event ids, and the resume rule: every branch of `decide_resume`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.core.stream_ids import decide_resume, format_id, parse_id

ids = st.tuples(st.integers(0, 10**15), st.integers(0, 10**6))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000000-3", (1_700_000_000_000, 3)),
        (b"5-0", (5, 0)),
        (" 7-1 ", (7, 1)),
        ("0-0", (0, 0)),
    ],
)
def test_parse_id_reads_stream_ids(text: str | bytes, expected: tuple[int, int]) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize(
    "text", [None, "", "abc", "17", "1-", "-1", "1-2-3", "1.5-2", "x-1", "1" * 21 + "-0", "-1-1"]
)
def test_parse_id_refuses_anything_else(text: str | None) -> None:
    assert parse_id(text) is None


@given(ids)
def test_format_and_parse_round_trip(stream_id: tuple[int, int]) -> None:
    assert parse_id(format_id(stream_id)) == stream_id


def test_an_id_newer_than_the_ring_ever_was_resets() -> None:
    decision = decide_resume((10, 1), first=(5, 0), last_generated=(10, 0))
    assert decision.verdict == "reset" and "unknown id" in decision.reason


def test_an_empty_ring_resumes_only_its_last_id() -> None:
    assert decide_resume((10, 0), first=None, last_generated=(10, 0)).verdict == "resume"
    older = decide_resume((9, 0), first=None, last_generated=(10, 0))
    assert older.verdict == "reset" and "aged out" in older.reason


def test_an_id_older_than_the_first_entry_resets() -> None:
    decision = decide_resume((4, 9), first=(5, 0), last_generated=(10, 0))
    assert decision.verdict == "reset" and "aged out" in decision.reason


@pytest.mark.parametrize("after", [(5, 0), (7, 3), (10, 0)])
def test_an_id_within_the_ring_resumes(after: tuple[int, int]) -> None:
    assert decide_resume(after, first=(5, 0), last_generated=(10, 0)).verdict == "resume"


def test_a_fresh_ring_resumes_from_zero() -> None:
    assert decide_resume((0, 0), first=None, last_generated=(0, 0)).verdict == "resume"
