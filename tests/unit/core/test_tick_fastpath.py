"""The fast validator never disagrees with the pydantic path: same Tick, or it defers (None).

Inputs mix valid values with near misses for every field (wrong JSON types, bools, bounds, odd
strings, unknown and missing keys), so both outcomes of every check are exercised.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from backend.core.tick_fastpath import fast_tick
from backend.core.ticks import MAX_SEQ, Tick, TimeBounds
from backend.core.validation import validate_tick, validate_tick_model

NOW_US = 1_795_000_000_000_000
BOUNDS = TimeBounds(NOW_US, max_age_s=7 * 86_400, max_future_s=5)
NOW_MS = NOW_US // 1000

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_numbers = st.one_of(
    st.floats(min_value=1e-13, max_value=1e13),
    st.integers(min_value=-5, max_value=10**13),
    st.sampled_from([0, 0.0, -0.0, 1e-12, 1e12, 1e15, 1e-12 / 2, 1e15 * 1.0000001, 2**70]),
    _json_scalars,
)
_names = st.one_of(
    st.from_regex(r"[A-Z0-9][A-Z0-9._:/-]{0,31}", fullmatch=True),
    st.sampled_from(["", "btc", "A" * 33, "ABC\n", " ABC", "ÄBC", "A B"]),
    _json_scalars,
)
_texts = st.one_of(
    st.text(min_size=1, max_size=130),
    st.sampled_from(["", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "tab\there", "\u200b"]),
    _json_scalars,
)
_times = st.one_of(
    st.integers(min_value=NOW_MS - 8 * 86_400_000, max_value=NOW_MS + 10_000),
    st.sampled_from(
        [
            "2026-11-18T11:06:37.123Z",
            "2026-11-18T12:06:37+01:00",
            "2026-11-18T11:06:37",
            "2026-11-18",
            "2026-13-01T00:00:00Z",
            "2026-11-18T11:06:37.123456789Z",
            NOW_MS,
            NOW_MS + 5_000,
            NOW_MS + 5_001,
            253_402_300_800_000,
            -1,
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    _json_scalars,
)
_seqs = st.one_of(
    st.integers(min_value=-3, max_value=10),
    st.sampled_from([MAX_SEQ, MAX_SEQ + 1, True, 1.0]),
    _json_scalars,
)
_FIELDS = {
    "symbol": _names,
    "price": _numbers,
    "volume": _numbers,
    "source": _texts,
    "ts": _times,
    "event_id": _texts,
    "seq": _seqs,
}


@st.composite
def raw_ticks(draw: st.DrawFn) -> dict[str, object]:
    present = draw(st.sets(st.sampled_from(sorted(_FIELDS)), min_size=5))
    raw = {name: draw(_FIELDS[name]) for name in sorted(present)}
    if draw(st.integers(0, 9)) == 0:
        raw[draw(st.sampled_from(["extra", "Symbol", "seq_no"]))] = 1
    return raw


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_ticks())
@example(
    {"symbol": "BTC", "price": 1, "volume": -0.0, "source": "s", "ts": NOW_MS, "event_id": "e"}
)
@example({"symbol": "BTC", "price": 1, "volume": 0, "source": "s", "ts": 1, "event_id": "e"})
def test_fast_path_agrees_with_pydantic_or_defers(raw: dict[str, object]) -> None:
    event("fast path" if fast_tick(raw, BOUNDS) else "deferred")
    reference = validate_tick_model(raw, BOUNDS)
    fast = fast_tick(raw, BOUNDS)
    if fast is not None:
        assert isinstance(reference, Tick), (raw, reference)
        assert repr(fast) == repr(reference)  # repr: tells -0.0 from 0.0 and 1 from 1.0
        assert [type(v) for v in fast] == [type(v) for v in reference]
    assert repr(validate_tick(raw, BOUNDS)) == repr(reference)


def test_typical_ticks_take_the_fast_path() -> None:
    """Guards the speed-up itself: ms and ISO times, int and float numbers, with or without seq."""
    for raw in (
        {"symbol": "BTCUSDT", "price": 100.5, "volume": 2, "source": "binance",
         "ts": NOW_MS, "event_id": "e-1"},
        {"symbol": "ES.F:1/X-2", "price": 7, "volume": 0.25, "source": "cme",
         "ts": "2026-11-18T11:06:37.123Z", "event_id": "e-2", "seq": 0},
    ):  # fmt: skip
        fast = fast_tick(raw, BOUNDS)
        assert isinstance(fast, Tick)
        assert fast == validate_tick_model(raw, BOUNDS)
