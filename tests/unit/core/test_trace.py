"""W3C traceparent: what is kept, what is ignored (never an error), what we answer."""

from __future__ import annotations

import itertools

import pytest

from backend.core.trace import (
    TraceParent,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    request_trace,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-{SPAN}-01", TraceParent(TRACE, SPAN, "01")),
        (f"00-{TRACE}-{SPAN}-00", TraceParent(TRACE, SPAN, "00")),
        (f"  00-{TRACE}-{SPAN}-01 ", TraceParent(TRACE, SPAN, "01")),
        # a later version: the known fields are read, what follows a "-" is ignored
        (f"cc-{TRACE}-{SPAN}-01-what-the-future-brings", TraceParent(TRACE, SPAN, "01")),
        (f"01-{TRACE}-{SPAN}-09", TraceParent(TRACE, SPAN, "09")),
        (None, None),
        ("", None),
        ("garbage", None),
        (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 is exactly 55 characters
        (f"00-{TRACE.upper()}-{SPAN}-01", None),  # lowercase hex only
        (f"00-{'0' * 32}-{SPAN}-01", None),  # all-zero trace id
        (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id
        (f"ff-{TRACE}-{SPAN}-01", None),  # version ff is forbidden
        (f"00-{TRACE[:-1]}-{SPAN}-01", None),  # short trace id
        (f"00-{TRACE}-{SPAN[:-1]}-01", None),  # short parent id
        (f"00-{TRACE}-{SPAN}-1", None),  # short flags
        (f"00-{TRACE}-{SPAN}-0g", None),  # not hex
        (f"00-{TRACE}-{SPAN}-01,00-{TRACE}-{SPAN}-01", None),  # two headers joined
        (f"cc-{TRACE}-{SPAN}-01x", None),  # a later version still needs the "-" separator
    ],
)
def test_parse_traceparent(header: str | None, expected: TraceParent | None) -> None:
    assert parse_traceparent(header) == expected


def counting_bytes():
    counter = itertools.count(1)
    return lambda n: bytes([next(counter) % 256]) * n


def test_ids_are_hex_of_the_right_width_from_the_injected_source() -> None:
    source = counting_bytes()
    assert new_trace_id(source) == "01" * 16
    assert new_span_id(source) == "02" * 8


def test_an_all_zero_draw_is_drawn_again() -> None:
    draws = iter([b"\0" * 16, b"\1" * 16])
    assert new_trace_id(lambda n: next(draws)) == "01" * 16
    spans = iter([b"\0" * 8, b"\2" * 8])
    assert new_span_id(lambda n: next(spans)) == "02" * 8


def test_a_valid_header_keeps_its_trace_id_and_flags_with_a_new_span() -> None:
    trace = request_trace(f"00-{TRACE}-{SPAN}-00", counting_bytes())
    assert trace.trace_id == TRACE
    assert trace.span_id == "01" * 8 and trace.span_id != SPAN
    assert trace.traceparent == f"00-{TRACE}-{'01' * 8}-00"
    assert parse_traceparent(trace.traceparent) == TraceParent(TRACE, "01" * 8, "00")


@pytest.mark.parametrize("header", [None, "nonsense", f"00-{'0' * 32}-{SPAN}-01"])
def test_no_or_an_invalid_header_gets_a_new_trace_id(header: str | None) -> None:
    trace = request_trace(header, counting_bytes())
    assert trace.trace_id == "02" * 16 and trace.span_id == "01" * 8
    assert trace.traceparent == f"00-{'02' * 16}-{'01' * 8}-01"


def test_default_source_makes_distinct_ids() -> None:
    assert len({new_trace_id() for _ in range(100)}) == 100
