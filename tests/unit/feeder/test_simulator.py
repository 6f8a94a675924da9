"""The simulator is pure and seeded: same seed, same ticks; every tick is one the API accepts."""

from __future__ import annotations

import random
from collections import Counter

from backend.core.ticks import TickIn
from feeder.prices import START_LEVELS
from feeder.simulator import Simulator

SYMBOLS = ["BTCUSDT", "ETHUSDT", "XAUUSD", "EURUSD", "AAPL", "ZZZ"]
SOURCES = ["binance", "coinbase", "kraken"]
NOW_MS = 1_790_000_000_000


def ticks(seed: int | None, n: int, symbols: list[str] = SYMBOLS) -> list[dict]:
    sim = Simulator(symbols, SOURCES, random.Random(seed))
    return [sim.next_tick(NOW_MS + i) for i in range(n)]


def test_same_seed_same_payloads() -> None:
    assert ticks(42, 500) == ticks(42, 500)


def test_different_seed_different_run() -> None:
    a, b = ticks(1, 50), ticks(2, 50)
    assert a[0]["event_id"] != b[0]["event_id"]
    assert [t["price"] for t in a] != [t["price"] for t in b]


def test_unseeded_runs_do_not_share_event_ids() -> None:
    assert {t["event_id"] for t in ticks(None, 20)}.isdisjoint(
        t["event_id"] for t in ticks(None, 20)
    )


def test_event_ids_unique() -> None:
    out = ticks(7, 3_000)
    assert len({t["event_id"] for t in out}) == len(out)


def test_seq_starts_at_one_and_increases_per_source_symbol() -> None:
    last: dict[tuple[str, str], int] = {}
    for tick in ticks(7, 3_000):
        key = (tick["source"], tick["symbol"])
        assert tick["seq"] == last.get(key, 0) + 1
        last[key] = tick["seq"]
    assert set(last) == {(src, sym) for src in SOURCES for sym in SYMBOLS}


def test_round_robin_spreads_evenly() -> None:
    out = ticks(3, len(SYMBOLS) * len(SOURCES) * 10)
    assert set(Counter(t["symbol"] for t in out).values()) == {len(SOURCES) * 10}
    assert set(Counter(t["source"] for t in out).values()) == {len(SYMBOLS) * 10}


def test_payloads_validate_against_api_model() -> None:
    for tick in ticks(11, 2_000):
        model = TickIn.model_validate(tick)
        assert model.price > 0 and model.volume > 0
        assert tick["ts"] >= NOW_MS and isinstance(tick["ts"], int)


def test_prices_start_near_realistic_levels_and_stay_positive() -> None:
    out = ticks(5, 60_000)  # 60 s of event time at 1 tick/ms
    for symbol in SYMBOLS:
        prices = [t["price"] for t in out if t["symbol"] == symbol]
        level = START_LEVELS.get(symbol, 100.0)
        assert abs(prices[0] / level - 1) < 0.01
        assert min(prices) > 0
        assert 0.5 * level < min(prices) <= max(prices) < 2 * level


def test_clock_is_passed_in() -> None:
    sim = Simulator(["AAPL"], ["x"], random.Random(0))
    assert sim.next_tick(123)["ts"] == 123


def test_explicit_run_id() -> None:
    sim = Simulator(["AAPL"], ["x"], random.Random(0), run_id="r1")
    assert sim.next_tick(1)["event_id"] == "r1-x-AAPL-1"


def test_universe_can_change_without_restarting_seqs() -> None:
    sim = Simulator(["AAPL", "BTCUSDT"], ["x"], random.Random(0), run_id="r")
    first = [sim.next_tick(NOW_MS + i) for i in range(4)]
    sim.set_universe(["ETHUSDT"], ["x", "y"])
    middle = [sim.next_tick(NOW_MS + 10 + i) for i in range(4)]
    sim.set_universe(["AAPL"], ["x"])
    back = sim.next_tick(NOW_MS + 20)
    assert {t["symbol"] for t in first} == {"AAPL", "BTCUSDT"}
    assert {t["symbol"] for t in middle} == {"ETHUSDT"} and {t["source"] for t in middle} == {
        "x",
        "y",
    }
    assert back["seq"] == 3  # AAPL/x had seqs 1 and 2 before: no false gap
    assert abs(back["price"] / first[0]["price"] - 1) < 0.001  # and no price jump


def test_all_sources_quote_one_mid() -> None:
    sim = Simulator(["BTCUSDT"], ["a", "b", "c"], random.Random(9))
    for i in range(3_000):
        tick = sim.next_tick(NOW_MS + i * 50)
        assert abs(tick["price"] / sim.price("BTCUSDT") - 1) < 6e-4  # a few bps
