"""The realism switches: exactly the holes, resends and reorderings asked for, and bad ticks
the API refuses. Pure: fixed seeds, event time passed in."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import orjson
import pytest

from backend.core.ticks import TimeBounds
from backend.core.validation import validate_tick
from feeder.faults import BAD_KINDS, MAX_TRIES, Emission, FaultyFeed, Kind, Rates
from feeder.simulator import Simulator

T0 = 1_790_000_000_000
SYMBOLS = ["BTCUSDT", "EURUSD", "AAPL"]
SOURCES = ["a", "b"]


def feed(rates: Rates, seed: int = 1) -> FaultyFeed:
    return FaultyFeed(
        Simulator(SYMBOLS, SOURCES, random.Random(seed)), random.Random(seed + 1), rates
    )


def run(f: FaultyFeed, n: int) -> list[Emission]:
    """`n` sends plus what is flushed at stop."""
    out = [e for i in range(n) if (e := f.next(T0 + i * 5)) is not None]
    return out + f.flush()


def bounds() -> TimeBounds:
    return TimeBounds(now_us=(T0 + 1_000_000) * 1_000, max_age_s=7 * 86_400, max_future_s=5)


def test_no_faults_is_the_plain_simulator() -> None:
    plain = Simulator(SYMBOLS, SOURCES, random.Random(1))
    expected = [plain.next_tick(T0 + i * 5) for i in range(2_000)]
    out = run(feed(Rates()), 2_000)
    assert [e.payload for e in out] == expected
    assert {e.kind for e in out} == {Kind.NEW}


def test_same_seed_same_sends() -> None:
    rates = Rates(duplicate=0.2, out_of_order=0.2, gap=0.05, bad=0.05)
    assert run(feed(rates, 3), 3_000) == run(feed(rates, 3), 3_000)
    assert run(feed(rates, 3), 300) != run(feed(rates, 4), 300)


def test_gaps_are_exactly_the_seqs_generated_but_never_sent() -> None:
    f = feed(Rates(duplicate=0.1, out_of_order=0.2, gap=0.1))
    out = run(f, 20_000)
    sent: dict[tuple[str, str], set[int]] = defaultdict(set)
    for e in out:
        sent[(e.payload["source"], e.payload["symbol"])].add(e.payload["seq"])
    holes: dict[tuple[str, str], set[int]] = defaultdict(set)
    for source, symbol, seq in f.recent_gaps:
        holes[(source, symbol)].add(seq)
    assert sum(len(h) for h in holes.values()) == f.stats.gapped == len(f.recent_gaps)
    for key in set(sent) | set(holes):
        last = f.simulator.last_seq(*key)
        assert sent[key].isdisjoint(holes[key])
        assert sent[key] | holes[key] == set(range(1, last + 1))
    assert f.stats.gapped / f.stats.generated == pytest.approx(0.1, abs=0.01)


def test_seq_increments_by_one_per_source_symbol_in_generation_order() -> None:
    f = feed(Rates(duplicate=0.3, out_of_order=0.3, gap=0.1, bad=0.1))
    out = run(f, 5_000)
    fresh = sorted(
        (e.payload for e in out if e.kind in (Kind.NEW, Kind.LATE)), key=lambda p: p["event_id"]
    )
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for p in fresh:
        by_key[(p["source"], p["symbol"])].append(p["seq"])
    for key, seqs in by_key.items():
        assert len(seqs) == len(set(seqs))  # each generated seq sent once (resends aside)
        assert max(seqs) <= f.simulator.last_seq(*key)


def test_duplicates_resend_identical_payloads() -> None:
    f = feed(Rates(duplicate=0.25))
    out = run(f, 10_000)
    first: dict[str, bytes] = {}
    copies = 0
    for e in out:
        raw = orjson.dumps(e.payload)
        if e.kind is Kind.DUPLICATE:
            copies += 1
            assert first[e.payload["event_id"]] == raw  # sent before, byte for byte the same
        else:
            assert e.payload["event_id"] not in first
            first[e.payload["event_id"]] = raw
    assert copies == f.stats.duplicated
    assert copies / len(first) == pytest.approx(0.25, abs=0.02)
    assert Counter(e.payload["event_id"] for e in out).most_common(1)[0][1] == 2


class RecordingSimulator(Simulator):
    """Remembers the order ticks were generated in (event_id -> index)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.generation: dict[str, int] = {}

    def next_tick(self, now_ms: int) -> dict:
        tick = super().next_tick(now_ms)
        self.generation[tick["event_id"]] = len(self.generation)
        return tick


def test_out_of_order_reorders_but_every_tick_is_sent() -> None:
    sim = RecordingSimulator(SYMBOLS, SOURCES, random.Random(1))
    f = FaultyFeed(sim, random.Random(2), Rates(out_of_order=0.3, gap=0.05))
    out = run(f, 10_000)
    generation = sim.generation
    ids = [e.payload["event_id"] for e in out]
    assert len(ids) == len(set(ids))  # no duplicates asked for: each tick exactly once
    assert len(ids) == f.stats.generated - f.stats.gapped  # nothing held back forever
    late = [i for i, e in enumerate(out) if e.kind is Kind.LATE]
    assert len(late) == f.stats.delayed
    assert len(late) / len(out) == pytest.approx(0.3, abs=0.02)
    # Every late tick is sent after some tick generated after it: really out of order.
    newest_sent = -1
    for e in out:
        mine = generation[e.payload["event_id"]]
        if e.kind is Kind.LATE:
            assert newest_sent > mine
        newest_sent = max(newest_sent, mine)


def test_bad_ticks_all_fail_validation_and_use_no_seq() -> None:
    f = feed(Rates(bad=1.0))
    out = [f.next(T0 + i) for i in range(500)]
    assert all(e is not None and e.kind is Kind.BAD and e.bad for e in out)
    assert f.simulator.last_seq("a", "BTCUSDT") == 0 and f.stats.generated == 0
    for e in out:
        assert e is not None
        assert isinstance(validate_tick(e.payload, bounds()), list), e.payload
        assert "-bad-" in e.payload.get("event_id", "-bad-")


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_each_bad_kind_is_refused(kind: str) -> None:
    good = Simulator(["BTCUSDT"], ["a"], random.Random(0)).next_tick(T0)
    assert not isinstance(validate_tick(dict(good), bounds()), list)
    bad = dict(good)
    BAD_KINDS[kind](bad)
    assert isinstance(validate_tick(bad, bounds()), list)
    orjson.dumps(bad)  # and it can still be sent as JSON


def test_bad_rate_mixes_in_at_the_asked_rate() -> None:
    out = run(feed(Rates(bad=0.1)), 10_000)
    assert sum(e.bad for e in out) / len(out) == pytest.approx(0.1, abs=0.015)


def test_extreme_rates_stay_bounded() -> None:
    lost = feed(Rates(gap=1.0))
    assert all(lost.next(T0 + i) is None for i in range(10))
    assert lost.stats.gapped == 10 * MAX_TRIES and lost.held == 0
    late = feed(Rates(out_of_order=1.0))
    out = [late.next(T0 + i) for i in range(2_000)]
    assert all(e is not None for e in out)
    assert late.held <= MAX_TRIES
    assert len(out) + len(late.flush()) == late.stats.generated


def test_rates_are_validated() -> None:
    with pytest.raises(ValueError):
        Rates(gap=1.5)
    with pytest.raises(ValueError):
        Rates(duplicate=float("nan"))
