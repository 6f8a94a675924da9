"""`python -m tests.bench.alerts_rules`: what alert evaluation costs per 1,000 ticks as rules grow.

A stream of 100 symbols at 10,000 ticks/s of event time (a random walk, 500-tick batches) runs
through `backend.core.alerts.conditions.evaluate`, batch by batch, from the memory the previous
batch left (as the evaluator does), with 0, 1,000 and 10,000 rules spread over the symbols
(thresholds within a few per cent of the price, every condition and trigger mode). Beside each:
the naive evaluator that checks every rule of the symbol on every observation. Prints Python CPU
per 1,000 ticks (median of `--repeat` runs), the rules actually checked per tick and the firings;
both evaluators must fire the same alerts, which the run verifies. No timed asserts anywhere.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.core.alerts.conditions import (
    Observation,
    RuleIndex,
    RuleState,
    SymbolMemory,
    condition_met,
    evaluate,
    fired,
    is_live,
    make_firing,
    trigger_allows,
)
from backend.core.alerts.rules import AlertRule
from tests.bench.text import fmt_int, fmt_ratio, say, table

NOW = datetime(2026, 12, 4, tzinfo=UTC)
T0_US = 1_780_000_000_000_000
CONDITIONS = ["above", "below", "crosses_above", "crosses_below", "crosses",
              "enters_channel", "exits_channel"]  # fmt: skip
TRIGGERS = ["once", "once_per_bar", "every_time"]
# Untimed: each rule's first evaluation is a one-off at its creation, not a per-tick cost.
WARM_UP_BATCHES = 5


def make_stream(
    seed: int, symbols: int, rate: int, seconds: float, batch: int
) -> list[dict[str, list[Observation]]]:
    """Batches, each as {symbol: its tick observations in (ts, event_id) order}."""
    rng = random.Random(seed)
    names = [f"SYM{i:03d}" for i in range(symbols)]
    price = dict.fromkeys(names, 100.0)
    step_us = 1_000_000 // rate
    batches: list[dict[str, list[Observation]]] = []
    current: dict[str, list[Observation]] = defaultdict(list)
    for i in range(int(rate * seconds)):
        symbol = rng.choice(names)
        price[symbol] = max(1.0, price[symbol] * (1 + rng.gauss(0, 0.002)))
        p = round(price[symbol], 4)
        current[symbol].append(
            Observation(
                kind="tick", ts_us=T0_US + i * step_us, event_id=f"e{i:09d}",
                values={"last_price": p}, price=p, volume=1.0, source="bench",
            )
        )  # fmt: skip
        if (i + 1) % batch == 0:
            batches.append(dict(current))
            current = defaultdict(list)
    if current:
        batches.append(dict(current))
    return batches


def make_rules(seed: int, count: int, symbols: int, near: int | None = None) -> list[AlertRule]:
    """`count` rules; the first `near` (default: all) within 5 % of the start price, the rest
    50-90 % away, where this stream never goes: rules that never fire."""
    rng = random.Random(seed)
    rules = []
    near = count if near is None else near
    for i in range(count):
        condition = rng.choice(CONDITIONS)
        spread = (
            rng.uniform(-0.05, 0.05) if i < near else rng.choice([-1, 1]) * rng.uniform(0.5, 0.9)
        )
        low = round(100.0 * (1 + spread), 2)
        spec: dict[str, Any] = {
            "id": f"r{i:05d}", "version": 1, "created_at": NOW, "updated_at": NOW,
            "name": f"rule {i}", "symbol": f"SYM{i % symbols:03d}", "field": "last_price",
            "condition": condition, "value": low, "trigger": rng.choice(TRIGGERS),
            "bar": "1m", "cooldown_s": rng.choice([0, 0, 30]),
        }  # fmt: skip
        if condition.endswith("channel"):
            spec["value2"] = round(low * 1.01, 2)
        rules.append(AlertRule.model_validate(spec))
    return rules


def run_indexed(
    batches: list[dict[str, list[Observation]]], rules: list[AlertRule]
) -> tuple[float, int, set[str]]:
    grouped: dict[str, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        grouped[rule.symbol].append(rule)
    indexes = {symbol: RuleIndex(r) for symbol, r in grouped.items()}
    empty = RuleIndex(())
    memory: dict[str, SymbolMemory] = defaultdict(SymbolMemory)
    fired_ids: set[str] = set()
    checked = 0
    started = 0.0
    for number, batch in enumerate(batches):
        if number == WARM_UP_BATCHES:
            started, checked = time.process_time(), 0
        for symbol, observations in batch.items():
            result = evaluate(indexes.get(symbol, empty), memory[symbol], observations, NOW, symbol)
            memory[symbol] = result.memory
            checked += result.checked
            fired_ids.update(f.alert_id for f in result.firings)
    return time.process_time() - started, checked, fired_ids


def run_naive(
    batches: list[dict[str, list[Observation]]], rules: list[AlertRule]
) -> tuple[float, int, set[str]]:
    """Every rule of the symbol checked on every observation: what an unindexed evaluator does."""
    grouped: dict[str, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        grouped[rule.symbol].append(rule)
    prev: dict[str, float] = {}
    states: dict[str, RuleState] = {}
    fired_ids: set[str] = set()
    checked = 0
    started = 0.0
    for number, batch in enumerate(batches):
        if number == WARM_UP_BATCHES:
            started, checked = time.process_time(), 0
        for symbol, observations in batch.items():
            for obs in observations:
                value = obs.values["last_price"]
                for rule in grouped.get(symbol, ()):
                    checked += 1
                    state = states.get(rule.id, RuleState())
                    before = prev.get(symbol) if state.seen else None
                    if not state.seen:
                        state = state.model_copy(update={"seen": True})
                    if (
                        condition_met(rule, before, value)
                        and is_live(rule, NOW)
                        and trigger_allows(rule, state, obs.ts_us)
                    ):
                        fired_ids.add(make_firing(rule, obs, value, symbol).alert_id)
                        state = fired(rule, state, obs.ts_us)
                    states[rule.id] = state
                prev[symbol] = value
    return time.process_time() - started, checked, fired_ids


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10_000, help="ticks/s of event time")
    parser.add_argument("--seconds", type=float, default=10.0, help="event time to replay")
    parser.add_argument("--rules", default="0,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    batches = make_stream(1, args.symbols, args.rate, args.seconds, 500)
    ticks = sum(len(o) for b in batches[WARM_UP_BATCHES:] for o in b.values())
    say(f"stream: {ticks:,} timed ticks over {args.symbols} symbols, {len(batches)} batches")
    rows: list[dict[str, Any]] = []
    counts = [int(c) for c in args.rules.split(",")]
    layouts = [(c, None) for c in counts] + [(c, min(counts[1:] or [0])) for c in counts[2:]]
    for count, near in layouts:
        rules = make_rules(2, count, args.symbols, near)
        indexed = [run_indexed(batches, rules) for _ in range(args.repeat)]
        naive = [run_naive(batches, rules) for _ in range(args.repeat)]
        if indexed[0][2] != naive[0][2]:
            raise SystemExit(f"{count} rules: indexed and naive evaluators fired differently")
        row = {
            "rules": count,
            "near": count if near is None else near,
            "indexed_cpu_ms_per_1k_ticks": statistics.median(r[0] for r in indexed) * 1e6 / ticks,
            "naive_cpu_ms_per_1k_ticks": statistics.median(r[0] for r in naive) * 1e6 / ticks,
            "indexed_checked_per_tick": indexed[0][1] / ticks,
            "naive_checked_per_tick": naive[0][1] / ticks,
            "firings": len(indexed[0][2]),
        }
        rows.append(row)
        say(f"{count:,} rules done: {row['firings']:,} firings")
    base = rows[0]["indexed_cpu_ms_per_1k_ticks"] if rows else 0.0
    print(
        table(
            [
                "rules",
                "CPU ms / 1k ticks",
                "vs 0 rules",
                "checked / tick",
                "naive CPU ms / 1k",
                "naive checked / tick",
                "firings",
            ],
            [
                [
                    f"{r['rules']:,} ({r['near']:,})",
                    f"{r['indexed_cpu_ms_per_1k_ticks']:.1f}",
                    fmt_ratio(r["indexed_cpu_ms_per_1k_ticks"] / base) if base else "-",
                    f"{r['indexed_checked_per_tick']:.2f}",
                    f"{r['naive_cpu_ms_per_1k_ticks']:.1f}",
                    f"{r['naive_checked_per_tick']:.1f}",
                    fmt_int(r["firings"]),
                ]
                for r in rows
            ],
        )
    )
    report = {"ticks": ticks, "symbols": args.symbols, "rows": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
