"""The whole pipeline through its real interfaces: HTTP → Redis → Dramatiq worker → Postgres."""

from __future__ import annotations

import random
import signal
import threading
import time
from typing import Any

import httpx
import orjson
import pytest
from dramatiq.brokers.redis import RedisBroker

from backend.bus.keys import Keys
from backend.settings import Settings
from tests.support.processes import AUTH, Processes
from tests.support.verify import stored_count, stored_ticks
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT", "XAUUSD"]


def make_tick(i: int, sym: str, now_ms: int, **overrides: Any) -> dict[str, Any]:
    tick = {
        "symbol": sym,
        "price": round(100 + i * 0.01, 2),
        "volume": round(0.5 + (i % 7) * 0.25, 2),
        "source": "itest",
        "ts": now_ms - 60_000 + i,
        "event_id": f"it-{i:05d}",
        "seq": i,
    }
    tick.update(overrides)
    return tick


INVALID_VARIANTS: list[tuple[dict[str, Any], str]] = [
    ({"price": -1}, "price"),
    ({"price": 0}, "price"),
    ({"volume": -5}, "volume"),
    ({"symbol": "bad symbol"}, "symbol"),
    ({"ts": "2026-01-01T00:00:00"}, "ts"),
    ({"source": ""}, "source"),
    ({"event_id": ""}, "event_id"),
    ({"unknown": 1}, "unknown"),
]


def test_mixed_stream_is_stored_exactly_once_and_views_agree(procs: Processes, settings: Settings):
    procs.start_api()
    procs.start_worker(processes=1, threads=2)
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    accepted: dict[str, dict[str, Any]] = {}
    sent = 0
    statuses: dict[str, int] = {"accepted": 0, "duplicate": 0, "conflict": 0, "invalid": 0}
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
        i = 0
        while sent < 1000:
            roll = rng.random()
            if roll < 0.10 and accepted:  # exact resend: duplicate
                tick = accepted[rng.choice(list(accepted))]
                r = client.post("/ingest/tick", json=tick)
                assert r.status_code == 200 and r.json()["status"] == "duplicate", r.text
                statuses["duplicate"] += 1
            elif roll < 0.13 and accepted:  # same event_id, other price: conflict, first write wins
                tick = dict(accepted[rng.choice(list(accepted))])
                tick["price"] = tick["price"] + 1
                r = client.post("/ingest/tick", json=tick)
                assert r.status_code == 409, r.text
                assert {
                    "field": "price",
                    "reason": "differs from the accepted tick with this event_id",
                } in r.json()["detail"]
                statuses["conflict"] += 1
            elif roll < 0.16:
                override, field = rng.choice(INVALID_VARIANTS)
                r = client.post(
                    "/ingest/tick", json=make_tick(100_000 + i, "BTCUSDT", now_ms, **override)
                )
                assert r.status_code == 422, r.text
                assert field in {e["field"] for e in r.json()["detail"]}
                statuses["invalid"] += 1
                i += 1
            else:
                tick = make_tick(i, SYMBOLS[i % 3], now_ms)
                r = client.post("/ingest/tick", json=tick)
                assert r.status_code == 200 and r.json() == {
                    "status": "accepted",
                    "event_id": tick["event_id"],
                }
                accepted[tick["event_id"]] = tick
                statuses["accepted"] += 1
                i += 1
            sent += 1
        # Bad JSON never reaches validation as a 500.
        for body in (b'{"price": NaN}', b'{"price": 1e400}', b"[Infinity]", b"{"):
            r = client.post(
                "/ingest/tick", content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body", r.text

    assert min(statuses.values()) > 0, statuses
    wait_for(lambda: stored_count(settings.pg_url) >= len(accepted), 30, what="rows in Postgres")
    with httpx.Client(base_url=procs.api_url, timeout=10) as client:
        wait_for(
            lambda: pipeline_idle(client), 30, what="the pipeline idle"
        )  # nothing more to come
    stored = stored_ticks(settings.pg_url)
    assert set(stored) == set(accepted)  # every accepted tick, and nothing else
    for event_id, row in stored.items():
        tick = accepted[event_id]
        assert row[1:] == (
            tick["symbol"],
            tick["price"],
            tick["volume"],
            tick["source"],
            tick["seq"],
        )

    with httpx.Client(base_url=procs.api_url, timeout=10) as client:
        listed = {s["symbol"] for s in client.get("/symbols").json()["symbols"]}
        assert listed == set(SYMBOLS)
        for symbol in SYMBOLS:
            mine = sorted(
                (t for t in accepted.values() if t["symbol"] == symbol),
                key=lambda t: (t["ts"], t["event_id"]),
            )
            expected_total = len(mine)
            view = wait_for(
                lambda s=symbol, n=expected_total: (
                    (v := client.get(f"/symbols/{s}").json()).get("ticks_total") == n and v
                ),
                15,
                what=f"view of {symbol}",
            )
            history = client.get(f"/symbols/{symbol}/history", params={"limit": 10_000}).json()
            assert len(history) == len(mine)
            assert [h["event_id"] for h in history] == [t["event_id"] for t in reversed(mine)]
            assert view["last_event_id"] == history[0]["event_id"] == mine[-1]["event_id"]
            assert view["last_price"] == history[0]["price"]
            latest = mine[-10:]
            assert view["sma_10"] == pytest.approx(sum(t["price"] for t in latest) / len(latest))
            assert [e["event_id"] for e in view["last_10"]] == [
                t["event_id"] for t in reversed(latest)
            ]
            alias = client.get(f"/tickets/{symbol}/history", params={"limit": 5}).json()
            assert alias == history[:5]
        assert client.get("/symbols/NOPE").status_code == 404
        assert client.get("/symbols/BTCUSDT/history", params={"limit": 0}).status_code == 422
        assert client.get("/symbols/BTCUSDT/history", params={"limit": 10_001}).status_code == 422
        metrics = client.get("/metrics").text
        assert (
            f'tickstream_ingest_ticks_total{{outcome="accepted",reason=""}} {len(accepted)}.0'
            in metrics
        )
        assert "tickstream_rows_written_total" in metrics


def pipeline_idle(client: httpx.Client) -> bool:
    """Nothing waiting anywhere: no calc message, no tick in the backlog, no outbox batch."""
    gauges = client.get("/stats").json()["gauges"]
    waiting = ("backlog_ticks", "queue_depth", "calc_b_depth", "outbox_entries", "outbox_pending")
    return all(gauges[name] == 0 for name in waiting)


def _sender(
    api_url: str, ticks: list[dict[str, Any]], acked: list[str], stop: threading.Event
) -> None:
    """Posts each tick until acknowledged, retrying with the same event_id like a real feeder."""
    with httpx.Client(base_url=api_url, auth=AUTH, timeout=5) as client:
        for tick in ticks:
            while not stop.is_set():
                try:
                    r = client.post("/ingest/tick", json=tick)
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    acked.append(tick["event_id"])
                    break
                time.sleep(0.05)
            time.sleep(0.002)


def test_worker_killed_mid_stream_loses_and_doubles_nothing(procs: Processes, settings: Settings):
    procs.start_api()
    procs.start_worker("worker-a", processes=2, threads=2)
    now_ms = int(time.time() * 1000)
    ticks = [make_tick(i, SYMBOLS[i % 3], now_ms) for i in range(1500)]
    acked: list[str] = []
    stop = threading.Event()
    sender = threading.Thread(target=_sender, args=(procs.api_url, ticks, acked, stop))
    sender.start()
    try:
        wait_for(lambda: stored_count(settings.pg_url) > 100, 30, what="first rows")
        procs.kill("worker-a", signal.SIGKILL)  # the whole worker: main process and both children
        killed_at = len(acked)
        # The API keeps acknowledging while no worker runs: the backlog waits for the next one.
        wait_for(lambda: len(acked) >= killed_at + 100, 30, what="acks while no worker runs")
        procs.start_worker("worker-b", processes=1, threads=2)
        sender.join(120)
    finally:
        stop.set()
    assert len(acked) == len(ticks) and killed_at < len(ticks)
    started = time.monotonic()
    wait_for(
        lambda: stored_count(settings.pg_url) >= len(ticks), 30, what="all rows after the kill"
    )
    stored = stored_ticks(settings.pg_url)
    assert set(stored) == {t["event_id"] for t in ticks}
    with httpx.Client(base_url=procs.api_url, timeout=5) as client:
        for symbol in SYMBOLS:
            expected = sum(1 for t in ticks if t["symbol"] == symbol)
            wait_for(
                lambda s=symbol, n=expected: (
                    client.get(f"/symbols/{s}").json().get("ticks_total") == n
                ),
                30,
                what=f"exact ticks_total for {symbol}",
            )
    print(f"converged {time.monotonic() - started:.1f}s after the last ack")


def test_messages_of_a_dead_consumer_are_redelivered_promptly(
    procs: Processes, settings: Settings, redis_client
):
    """A consumer that fetched messages and died: they come back within ~heartbeat timeout."""
    procs.start_api()
    now_ms = int(time.time() * 1000)
    with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
        r = client.post("/ingest/ticks", json=[make_tick(i, "BTCUSDT", now_ms) for i in range(50)])
        assert r.json()["accepted"] == 50
    keys = Keys.from_settings(settings)
    # Play a worker that fetches the message (it moves to our un-acked set) and then dies.
    broker = RedisBroker(url=settings.effective_redis_url, namespace=keys.dramatiq_namespace)
    consumer = broker.consume(settings.queue_name, prefetch=10, timeout=100)
    message = wait_for(lambda: next(consumer), 5, what="fetch")
    assert message.actor_name == "calc_ticks"
    assert redis_client.llen(keys.queue_list()) == 0  # nothing left for anyone else
    # The worker starts while the consumer still holds the message (the queue is empty, so it
    # can take nothing); the clock starts once it is ready, so start-up is not counted.
    worker = procs.start_worker(processes=1, threads=2)
    wait_for(
        lambda: "ready for action" in procs.log("worker") or worker.poll() is not None,
        60,
        what="the worker ready",
    )
    assert worker.poll() is None, procs.log("worker")[-3000:]
    died_at = time.monotonic()
    consumer.close()  # no ack, and no more heartbeats: a dead worker
    wait_for(
        lambda: redis_client.get(keys.view("BTCUSDT")), 40, interval=0.2, what="redelivered view"
    )
    elapsed = time.monotonic() - died_at
    view = orjson.loads(redis_client.get(keys.view("BTCUSDT")))
    assert view["ticks_total"] == 50
    print(
        f"redelivered and applied {elapsed:.1f}s after the consumer died "
        f"(heartbeat timeout {settings.heartbeat_timeout_ms / 1000:.0f}s)"
    )
    # Bounded by heartbeat timeout + a maintenance pass; with Dramatiq's defaults this is minutes.
    assert elapsed < settings.heartbeat_timeout_ms / 1000 + 8
    wait_for(lambda: stored_count(settings.pg_url) == 50, 20, what="rows")
