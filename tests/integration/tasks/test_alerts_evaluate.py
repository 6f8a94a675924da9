"""Alert evaluation through the running system: ticks posted over HTTP ingest, real Dramatiq
workers (calc records observations, `alerts.evaluate` evaluates them), rules in the workers'
mirror, firings observed as `alert.fired` events on the test's channel.

Ticks are posted in increasing event time, each batch after the previous one is in the view, so
every tick becomes the latest in turn and the naive reference (`tests.alerts_reference`) applies.
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import orjson
import pytest
from redis import Redis

from backend.bus.alert_evaluation import ALERTS_EVALUATION_CONFLICTS
from backend.bus.enqueue import queue_message
from backend.bus.keys import ALERTS_EVALUATE_ACTOR, ALERTS_EVALUATE_QUEUE, Keys
from backend.settings import Settings
from tests.alerts_reference import expected_price_firings
from tests.support.alerts import (
    FiredEvents,
    as_reference,
    make_rule,
    price_rules,
    put_rules,
)
from tests.support.processes import AUTH, Processes, worker_command
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

STEP_MS = 5_000  # 12 ticks per 1-minute bar: once_per_bar and cooldowns both matter


def base_ms() -> int:
    """A minute boundary 50 minutes ago: inside MAX_TICK_AGE (59 min), bars aligned, and room
    for the longest run here (120 ticks, 10 min) before now."""
    return (int(time.time()) - 3_000) // 60 * 60_000


def tick(symbol: str, i: int, price: float, t0_ms: int, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol, "price": price, "volume": 1.0, "source": "alerts",
        "ts": t0_ms + i * STEP_MS, "event_id": f"{symbol}-{i:05d}",
    } | extra  # fmt: skip


def walk(rng: random.Random, count: int) -> list[float]:
    """Prices wandering across 99.5, 100 and 100.5 (every rule fires, and re-arms)."""
    price, out = 100.0, []
    for _ in range(count):
        price = min(max(price + rng.choice([-0.6, -0.3, -0.1, 0.1, 0.3, 0.6]), 98.5), 101.5)
        out.append(round(price, 2))
    return out


def view_event_id(redis: Redis, keys: Keys, symbol: str) -> str | None:
    raw = redis.get(keys.view(symbol))
    return orjson.loads(raw)["last_event_id"] if raw else None


def post_in_order(
    client: httpx.Client, redis: Redis, keys: Keys, batches: list[list[dict[str, Any]]]
) -> None:
    """POST each batch; wait until each symbol's view holds the batch's newest tick of it before
    the next (two workers could otherwise apply batches out of order, making ticks late)."""
    for batch in batches:
        r = client.post("/ingest/ticks", json=batch)
        assert r.status_code == 200, r.text
        newest: dict[str, tuple[int, str]] = {}
        for t in batch:
            newest[t["symbol"]] = max(newest.get(t["symbol"], (0, "")), (t["ts"], t["event_id"]))
        for symbol, (_, event_id) in newest.items():
            wait_for(
                lambda s=symbol, e=event_id: view_event_id(redis, keys, s) is not None
                and view_event_id(redis, keys, s) >= e,
                20, interval=0.01, what=f"{symbol}'s view at {event_id}",
            )  # fmt: skip


def reference_pairs(rules: list[Any], ticks: list[dict[str, Any]]) -> set[tuple[str, str]]:
    as_ticks = [(t["ts"] * 1_000, t["event_id"], t["price"]) for t in ticks]
    return {(f.rule_id, f.event_id) for f in expected_price_firings(as_reference(rules), as_ticks)}


def start_worker(procs: Processes, split: bool) -> None:
    """One worker process; with CALC_SPLIT, the view observation comes from calc-b."""
    procs.spawn("worker", worker_command(1, 2), {"CALC_SPLIT": "1" if split else "0"})


@pytest.fixture
def fired(redis_client: Redis, settings: Settings) -> Any:
    events = FiredEvents(redis_client, settings)
    yield events
    events.close()


@pytest.mark.parametrize("split", [False, True], ids=["one-step", "calc-split"])
def test_every_condition_and_trigger_matches_the_reference(
    procs: Processes, settings: Settings, redis_client: Redis, fired: FiredEvents, split: bool
) -> None:
    symbol = "ALRT"
    rules = price_rules(symbol)
    put_rules(redis_client, settings, rules)
    procs.start_api()
    start_worker(procs, split)
    rng = random.Random(13)
    t0 = base_ms()
    ticks = [tick(symbol, i, p, t0) for i, p in enumerate(walk(rng, 160))]
    batches, i = [], 0
    while i < len(ticks):
        size = rng.randint(1, 6)
        batches.append(ticks[i : i + size])
        i += size
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        post_in_order(client, redis_client, Keys.from_settings(settings), batches)
    fired.wait_settled([symbol])
    expected = reference_pairs(rules, ticks)
    assert len(expected) > 60  # the walk exercises every rule
    assert {rule_id for rule_id, _ in expected} == {r.id for r in rules}
    assert fired.pairs() == expected
    assert not fired.repeated_ids()


def test_a_spike_inside_one_batch_fires_and_a_late_tick_never_does(
    procs: Processes, settings: Settings, redis_client: Redis, fired: FiredEvents
) -> None:
    symbol = "SPIKE"
    crosses = make_rule("crosses", symbol, condition="crosses_above", value=100.0)
    above = make_rule("above", symbol, condition="above", value=100.0)
    put_rules(redis_client, settings, [crosses, above])
    procs.start_api()
    procs.start_worker(processes=1, threads=2)
    keys = Keys.from_settings(settings)
    t0 = base_ms()
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        # One batch: 99 → 150 → 99. The view only ever shows 99, the spike still fires.
        post_in_order(client, redis_client, keys, [
            [tick(symbol, 1, 99.0, t0), tick(symbol, 2, 150.0, t0), tick(symbol, 3, 99.0, t0)],
        ])  # fmt: skip
        assert fired.wait_settled([symbol]) and fired.pairs() == {
            ("crosses", f"{symbol}-00002"), ("above", f"{symbol}-00002"),
        }  # fmt: skip
        # A late tick at 200 (older than the latest): the latest price never was 200.
        r = client.post("/ingest/ticks", json=[tick(symbol, 0, 200.0, t0)])
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        wait_for(
            lambda: orjson.loads(redis_client.get(keys.view(symbol)) or b"{}").get("ticks_total")
            == 4, 20, what="the late tick applied",
        )  # fmt: skip
        fired.wait_settled([symbol])
        assert len(fired.firings) == 2
        # The same price as the latest fires (the check above could have failed).
        post_in_order(client, redis_client, keys, [[tick(symbol, 4, 200.0, t0)]])
    fired.wait_settled([symbol])
    assert fired.pairs() == {
        ("crosses", f"{symbol}-00002"), ("above", f"{symbol}-00002"),
        ("crosses", f"{symbol}-00004"), ("above", f"{symbol}-00004"),
    }  # fmt: skip


@pytest.mark.parametrize("split", [False, True], ids=["one-step", "calc-split"])
def test_a_view_field_rule_fires_once_when_it_becomes_true(
    procs: Processes, settings: Settings, redis_client: Redis, fired: FiredEvents, split: bool
) -> None:
    symbol = "VOLU"
    rule = make_rule("vol", symbol, field="volume_1m", condition="above", value=5.5)
    put_rules(redis_client, settings, [rule])
    procs.start_api()
    start_worker(procs, split)
    t0 = base_ms()
    # 1 s apart, volume 1 each: volume_1m climbs 1, 2, ... 12 and stays above 5.5.
    ticks = [tick(symbol, i, 100.0, t0) | {"ts": t0 + i * 1_000} for i in range(12)]
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        post_in_order(
            client, redis_client, Keys.from_settings(settings),
            [ticks[i : i + 2] for i in range(0, 12, 2)],
        )  # fmt: skip
    firings = fired.wait_settled([symbol])
    assert [(f.rule_id, f.observed, f.tick.event_id) for f in firings] == [
        ("vol", 6.0, f"{symbol}-00005")
    ]


def test_a_disabled_or_deleted_rule_stops_firing_after_the_refresh(
    procs: Processes, settings: Settings, redis_client: Redis, fired: FiredEvents
) -> None:
    symbol = "TOGL"
    keep = make_rule("keep", symbol, condition="crosses_above", value=100.0)
    paused = make_rule("paused", symbol, condition="crosses_above", value=100.0)
    deleted = make_rule("deleted", symbol, condition="crosses_above", value=100.0)
    mirror = put_rules(redis_client, settings, [keep, paused, deleted])
    procs.start_api()
    procs.start_worker(processes=1, threads=2)
    keys = Keys.from_settings(settings)
    t0 = base_ms()
    n = 0

    def crossing(client: httpx.Client) -> str:
        nonlocal n
        n += 2
        post_in_order(client, redis_client, keys, [
            [tick(symbol, n, 99.0, t0), tick(symbol, n + 1, 101.0, t0)],
        ])  # fmt: skip
        fired.wait_settled([symbol])
        return f"{symbol}-{n + 1:05d}"

    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        first = crossing(client)
        assert fired.pairs() == {("keep", first), ("paused", first), ("deleted", first)}
        mirror.put(paused.model_copy(update={"enabled": False, "version": 2}))
        mirror.delete(deleted.id)
        # A rule created after the change: once it fires, the evaluator has the new rules.
        mirror.put(make_rule("marker", symbol, condition="crosses_above", value=100.0))
        crossed: list[str] = []
        wait_for(
            lambda: crossed.append(crossing(client)) or ("marker", crossed[-1]) in fired.pairs(),
            20, interval=0, what="the new rules in the evaluator",
        )  # fmt: skip
        after = [crossing(client) for _ in range(3)]
    for event_id in after:
        fired_on = {rule_id for rule_id, e in fired.pairs() if e == event_id}
        assert fired_on == {"keep", "marker"}, (event_id, fired_on)


@pytest.mark.parametrize("kills", [0, 2], ids=["no-kill", "kill-9-twice"])
def test_exactly_once_with_two_workers_duplicates_and_redelivered_messages(
    procs: Processes, settings: Settings, redis_client: Redis, fired: FiredEvents, kills: int
) -> None:
    """Two worker processes evaluate concurrently (every batch sends an evaluation message per
    symbol, and the test sends more, as a redelivery would); resent ticks are mixed in; with
    `kills`, a worker is kill -9ed that many times mid-stream (right after a batch is posted,
    while both are busy) and replaced. Every firing is seen once, and the set is the
    reference's."""
    symbols = ["EXA", "EXB", "EXC"]
    rules = {s: price_rules(s) for s in symbols}
    put_rules(redis_client, settings, [r for rs in rules.values() for r in rs])
    procs.start_api()
    procs.start_worker("worker-1", processes=1, threads=4)
    procs.start_worker("worker-2", processes=1, threads=4)
    keys = Keys.from_settings(settings)
    rng = random.Random(2026)
    t0 = base_ms()
    ticks = {s: [tick(s, i, p, t0) for i, p in enumerate(walk(rng, 120))] for s in symbols}
    # Interleave the symbols in event-time order, in batches of 1..12; 10 % resends.
    merged = sorted((t for ts in ticks.values() for t in ts), key=lambda t: (t["ts"], t["symbol"]))
    batches: list[list[dict[str, Any]]] = []
    sent: list[dict[str, Any]] = []
    i = 0
    while i < len(merged):
        size = rng.randint(1, 12)
        batch = merged[i : i + size]
        batch += [rng.choice(sent) for _ in range(len(sent) and rng.randint(0, 2))]
        sent += merged[i : i + size]
        batches.append(batch)
        i += size
    kill_at = {len(batches) * (k + 1) // (kills + 1) for k in range(kills)}
    live = ["worker-1", "worker-2"]
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        for k, batch in enumerate(batches):
            # Redelivered evaluation messages, ahead of the batch: both workers are busy on
            # the same symbols when its observations arrive.
            with redis_client.pipeline(transaction=True) as pipe:
                for symbol in symbols:
                    for _ in range(4):
                        queue_message(
                            pipe, keys, ALERTS_EVALUATE_QUEUE, ALERTS_EVALUATE_ACTOR,
                            [orjson.dumps(symbol)],
                        )  # fmt: skip
                pipe.execute()
            if k in kill_at:
                r = client.post("/ingest/ticks", json=batch)
                assert r.status_code == 200, r.text
                victim = live.pop(0)
                procs.kill(victim)  # kill -9 the process group, mid-work
                live.append(f"worker-{3 + k}")
                procs.start_worker(live[-1], processes=1, threads=4)
            post_in_order(client, redis_client, keys, [batch])
    fired.wait_settled(symbols, timeout=60)
    expected: set[tuple[str, str]] = set()
    for symbol in symbols:
        expected |= reference_pairs(rules[symbol], ticks[symbol])
    assert not fired.repeated_ids()
    assert fired.pairs() == expected
    assert len(fired.firings) == len(expected) > 150
    assert fired.bad_observations() == 0
    conflicts = int(redis_client.hget(keys.stats, ALERTS_EVALUATION_CONFLICTS) or 0)
    print(f"firings {len(expected)}, evaluation conflicts (retried transactions) {conflicts}")


@pytest.mark.parametrize("split", [False, True], ids=["one-step", "calc-split"])
def test_gap_opened_fires_when_a_sequence_gap_opens(
    procs: Processes, settings: Settings, redis_client: Redis, fired: FiredEvents, split: bool
) -> None:
    symbol = "GAPS"
    rule = make_rule("gap", symbol, field="gap_opened", condition="above", value=None)
    put_rules(redis_client, settings, [rule])
    procs.start_api()
    start_worker(procs, split)
    t0 = base_ms()
    seqs = [1, 2, 3, 7, 8, 9]  # 4..6 never arrive: one gap opens with seq 7
    ticks = [tick(symbol, i, 100.0, t0, seq=seq) for i, seq in enumerate(seqs)]
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        post_in_order(client, redis_client, Keys.from_settings(settings), [[t] for t in ticks])
    firings = fired.wait_settled([symbol])
    assert [(f.rule_id, f.tick.event_id) for f in firings] == [("gap", f"{symbol}-00003")]
