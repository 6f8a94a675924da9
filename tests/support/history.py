"""Stored history for replay tests: deterministic ticks written straight into PostgreSQL."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import psycopg

from backend.core.ticks import Tick
from backend.storage.ticks_repo import write_ticks

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SOURCES = ("binance", "kraken")


def make_history(
    symbols: Sequence[str], *, ticks_per_symbol: int, span_s: float, seed: int = 7,
    start_us: int = START_US,
) -> list[Tick]:  # fmt: skip
    """Ticks spread over `span_s` of event time per symbol, prices wandering around 100 (so the
    price rules of tests.support.alerts cross often), sequences per source with a few holes (so
    gaps open), some ticks sharing a timestamp (ties broken by event_id)."""
    rng = random.Random(seed)
    out: list[Tick] = []
    step_us = max(1, int(span_s * 1_000_000 / ticks_per_symbol))
    for symbol in symbols:
        price = 100.0
        seqs = dict.fromkeys(SOURCES, 0)
        ts = start_us
        for i in range(ticks_per_symbol):
            source = SOURCES[i % len(SOURCES)]
            seqs[source] += 2 if rng.random() < 0.01 else 1  # a hole now and then
            price = round(max(1.0, price + rng.uniform(-0.4, 0.4)), 2)
            if rng.random() > 0.1:  # one in ten shares the previous tick's time
                ts += rng.randint(1, 2 * step_us)
            out.append(
                Tick(
                    event_id=f"{symbol}-{i:07d}", symbol=symbol, ts_us=ts, price=price,
                    volume=round(rng.uniform(0.001, 3.0), 3), source=source, seq=seqs[source],
                    received_us=ts + 1_000,
                )
            )  # fmt: skip
    return out


def store(pg_url: str, ticks: Sequence[Tick], chunk: int = 20_000) -> int:
    """Write `ticks` into md_ticks (and the candle rollups), as the flusher would."""
    inserted = 0
    with psycopg.connect(pg_url) as conn:
        for start in range(0, len(ticks), chunk):
            inserted += write_ticks(conn, ticks[start : start + chunk])
    return inserted


# --- history files for `python -m tasks.import` ------------------------------------------
HEADER = ["Ticker", "timestamp", "price", "qty", "exchange", "seq"]
BAD_KINDS = [
    ("price", "abc"), ("price", "nan"), ("price", "-2"), ("Ticker", "bad symbol"),
    ("timestamp", ""), ("timestamp", "2026-13-45T00:00:00Z"), ("qty", "1e40"), ("seq", "x"),
]  # fmt: skip


def write_history_csv(path: Path, rows: int, seed: int = 1) -> tuple[list[list[str]], set[int]]:
    """`rows` data rows, 1 % bad (every kind of `BAD_KINDS`), one good trade written twice; the
    good rows and the (physical) line numbers of the bad ones."""
    rng = random.Random(seed)
    good: list[list[str]] = []
    bad_lines: set[int] = set()
    line = 1  # the header
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            row = [
                rng.choice(["AAA", "BBB"]),
                str(1_600_000_000_000 + i * 37 + rng.randint(0, 30)),  # epoch ms, out of order
                f"{rng.uniform(90, 110):.2f}", f"{rng.uniform(0.01, 5):.3f}",
                rng.choice(["x", "y"]), str(i),
            ]  # fmt: skip
            copies = 2 if i == 10 else 1  # an identical trade, twice: two ticks
            for _ in range(copies):
                line += 1
                if i % 100 == 50:
                    column, value = BAD_KINDS[(i // 100) % len(BAD_KINDS)]
                    row[HEADER.index(column)] = value
                    bad_lines.add(line)
                else:
                    good.append(row)
                writer.writerow(row)
    return good, bad_lines
