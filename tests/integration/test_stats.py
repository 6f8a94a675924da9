"""GET /stats and /stats/history against real Redis, Postgres, API and worker processes.

The counters must equal exactly what was sent, whichever replica answered; N API replicas must
write one sample per slot (tested on simulated time: the samplers take a clock and a sleeper); a
Redis outage must lose no rejection counts and never stop the API. Alert firings and webhook
deliveries are counted too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.api.routes.stats import StatsSample
from backend.api.stats_sampler import StatsSampler
from backend.bus.keys import Keys
from backend.bus.ledger import LedgerReader
from backend.bus.samples import SamplesStore
from backend.settings import Settings
from tests.support.processes import AUTH, running, settings_env
from tests.support.simulated_time import SimulatedTime
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for
from tests.support.webhooks import queue_webhook_firings, receiving, status

pytestmark = pytest.mark.integration

INTERVAL = 0.3
BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]


def stats_env(settings: Settings) -> dict[str, str]:
    return {**settings_env(settings), "STATS_INTERVAL": str(INTERVAL)}


# Simulated start: a little into a slot, so each advance by INTERVAL passes exactly one boundary
# (and the 1 ms the sampler waits past it).
SIM_START = 1_800_000_000.05


def sampler_on(
    client: AsyncRedis, keys: Keys, settings: Settings, time_: SimulatedTime
) -> StatsSampler:
    """An API replica's sampler on `client`, on simulated time."""
    return StatsSampler(
        LedgerReader(client, keys, heartbeat_timeout_ms=settings.heartbeat_timeout_ms),
        SamplesStore(client, keys),
        settings.model_copy(update={"stats_interval": INTERVAL}),
        clock=time_.clock,
        sleep=time_.sleep,
    )


def tick(i: int, symbol: str = "BTCUSDT", **overrides: Any) -> dict[str, Any]:
    body = {
        "symbol": symbol,
        "price": 100.0 + i,
        "volume": 1.0,
        "source": "stats-test",
        "ts": int(time.time() * 1000) - 1000,
        "event_id": f"st-{symbol}-{i}",
        "seq": i,
    }
    body.update(overrides)
    return body


def send_mixed_traffic(client: httpx.Client) -> dict[str, Any]:
    """Accepted, duplicate, conflicting and invalid ticks; returns what the API answered."""
    first = [tick(i) for i in range(12)] + [tick(i, "ETHUSDT") for i in range(8)]
    r = client.post("/ingest/ticks", json=first)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 20, "duplicates": 0, "rejected": []}
    second = [
        *first[:5],  # 5 duplicates (same content)
        *({**t, "price": 1.5} for t in first[5:8]),  # 3 conflicts (same event_id, other price)
        tick(100, price=-1),  # price
        tick(101, price=-1),  # price
        tick(102, price=-1, volume=-5),  # price and volume
        tick(103, bogus=True),  # an unknown field
        {k: v for k, v in tick(104).items() if k != "symbol"},  # symbol missing
        tick(105),  # accepted
    ]
    body = client.post("/ingest/ticks", json=second).json()
    assert (body["accepted"], body["duplicates"], len(body["rejected"])) == (1, 5, 8)
    assert client.post("/ingest/tick", json=tick(106)).json()["status"] == "accepted"
    assert client.post("/ingest/tick", json=first[0]).json()["status"] == "duplicate"
    assert client.post("/ingest/tick", json={**first[1], "price": 3.0}).status_code == 409
    assert client.post("/ingest/tick", json=tick(107, price=0)).status_code == 422
    return {
        "counters": {"ingest_accepted": 22, "ingest_duplicate": 6, "ingest_conflict": 4},
        "rejected": {"price": 4, "volume": 1, "unknown_field": 1, "symbol": 1},
    }


def test_stats_count_exactly_what_was_sent_and_history_grows(settings: Settings, tmp_path: Path):
    with running(stats_env(settings), tmp_path) as procs:
        procs.start_api()
        procs.start_worker()
        with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
            expected = send_mixed_traffic(client)
            accepted = expected["counters"]["ingest_accepted"]

            def settled() -> dict[str, Any] | None:
                s = client.get("/stats").json()
                c = s["counters"]
                done = (
                    all(c[k] == v for k, v in expected["counters"].items())
                    and s["rejected"] == expected["rejected"]
                    and c["calc_ticks"] == accepted
                    and c["rows_written"] == accepted
                )
                return s if done else None

            sample = wait_for(settled, 20, interval=0.2, what="/stats to count every tick")
            counters = sample["counters"]
            # Every calculated tick's ingest→view latency was observed once (non-split calc).
            view = sample["view_latency_le"]
            assert list(view) == [*BOUNDS, "+Inf"]
            assert view["+Inf"] == counters["calc_ticks"] == accepted
            assert list(view.values()) == sorted(view.values())  # cumulative
            flush = sample["flush_seconds_le"]
            assert list(flush) == BOUNDS and list(flush.values()) == sorted(flush.values())
            assert counters["flush_count"] >= 1 and counters["flush_ticks_sum"] == accepted
            assert counters["flush_seconds_sum"] > 0
            gauges = sample["gauges"]
            assert gauges["workers"] >= 1
            assert gauges["dead_letters"] == 0 and gauges["queue_depth"] == 0
            assert gauges["calc_b_depth"] == 0
            assert gauges["outbox_entries"] == 0 and gauges["outbox_pending"] == 0
            assert gauges["feeders_alive"] == 0 and gauges["feeders_target_tps"] == 0

            # The prometheus view of the same pipeline-wide figures.
            text = client.get("/metrics").text
            assert (
                f'tickstream_pipeline_ticks_total{{outcome="accepted",reason=""}} {accepted}.0'
                in text
            )
            assert 'tickstream_pipeline_ticks_total{outcome="rejected",reason="price"} 4.0' in text
            assert f'tickstream_view_latency_seconds_le{{le="+Inf"}} {accepted}.0' in text

            def history_caught_up() -> dict[str, Any] | None:
                h = client.get("/stats/history", params={"minutes": 15}).json()
                last = h["samples"][-1]["counters"] if h["samples"] else {}
                done = len(h["samples"]) >= 2 and last.get("rows_written") == accepted
                return h if done else None

            history = wait_for(history_caught_up, 20, interval=0.2, what="samples in history")
            assert history["interval_s"] == INTERVAL
            assert history["retention_s"] == settings.stats_retention
            samples = history["samples"]
            stamps = [s["ts_us"] for s in samples]
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # oldest first
            for older, newer in pairwise(samples):
                for name, value in older["counters"].items():
                    assert newer["counters"][name] >= value, name
                for reason, value in older["rejected"].items():
                    assert newer["rejected"][reason] >= value, reason
                assert newer["view_latency_le"]["+Inf"] >= older["view_latency_le"]["+Inf"]
            assert samples[-1]["rejected"] == expected["rejected"]
            assert samples[-1]["counters"]["ingest_conflict"] == 4

            for bad in (0, 61, "x"):
                r = client.get("/stats/history", params={"minutes": bad})
                assert r.status_code == 422, (bad, r.text)
                assert r.json()["error"] == "validation_failed"
                assert [d["field"] for d in r.json()["detail"]] == ["minutes"]


def test_two_api_replicas_count_toward_the_same_totals(settings: Settings, tmp_path: Path):
    env = stats_env(settings)
    with running(env, tmp_path / "a") as a, running(env, tmp_path / "b") as b:
        a.start_api()
        b.start_api()
        # Both replicas answer ingest and both count toward the same pipeline-wide totals.
        for procs, offset in ((a, 0), (b, 100)):
            with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
                batch = [tick(offset + i) for i in range(3)] + [tick(offset + 50, price=-1)]
                assert client.post("/ingest/ticks", json=batch).json()["accepted"] == 3
        for procs in (a, b):
            with httpx.Client(base_url=procs.api_url, timeout=5) as client:
                wait_for(
                    lambda client=client: (
                        (s := client.get("/stats").json())["counters"]["ingest_accepted"] == 6
                        and s["rejected"] == {"price": 2}
                    ),
                    10,
                    what="both replicas' counts in /stats",
                )


def test_two_replicas_write_exactly_one_sample_per_slot(settings: Settings, redis_client: Redis):
    """Two samplers (two API replicas) on one simulated clock: each tries every slot, SET NX lets
    exactly one write it, so there is one sample per slot elapsed, in slot order."""
    keys = Keys.from_settings(settings)
    slots_run = 15

    async def scenario() -> None:
        time_ = SimulatedTime(start=SIM_START)
        clients = [AsyncRedis.from_url(settings.effective_redis_url) for _ in range(2)]
        replicas = [sampler_on(client, keys, settings, time_) for client in clients]
        for replica in replicas:
            await replica.start()
        await time_.until_asleep(2)
        for _ in range(slots_run - 1):
            time_.advance(INTERVAL)
            await time_.until_asleep(2)  # both replicas have tried this slot
        for replica, client in zip(replicas, clients, strict=True):
            await replica.stop()
            await client.aclose()

    asyncio.run(scenario())
    entries = redis_client.xrange(keys.stats_samples)
    slots = [int(fields[b"slot"]) for _, fields in entries]
    assert len(slots) == slots_run, "not exactly one sample per slot"
    assert slots == list(range(slots[0], slots[0] + slots_run))  # every slot, in order
    stamps = [orjson.loads(fields[b"s"])["ts_us"] for _, fields in entries]
    assert stamps == sorted(stamps)  # stamped with the simulated clock, slot by slot


def test_a_sampler_outlives_redis_outages_logging_once_and_losing_no_rejection(
    settings: Settings, redis_client: Redis, caplog: pytest.LogCaptureFixture
):
    url = urlsplit(settings.effective_redis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    netloc = url.netloc.replace(f"{url.hostname}:{url.port}", f"127.0.0.1:{proxy.port}")
    keys = Keys.from_settings(settings)
    rounds_down = 6

    async def scenario() -> None:
        time_ = SimulatedTime(start=SIM_START)
        client = AsyncRedis.from_url(urlunsplit(url._replace(netloc=netloc)))
        sampler = sampler_on(client, keys, settings, time_)
        await sampler.start()
        await time_.until_asleep(1)
        proxy.cut()
        sampler.reject("unavailable", 3)
        sampler.reject("price")
        for _ in range(rounds_down):  # several rounds fail meanwhile
            time_.advance(INTERVAL)
            await time_.until_asleep(1)
        assert sampler.pending == {"unavailable": 3, "price": 1}  # kept, not dropped
        proxy.restore()
        time_.advance(INTERVAL)
        await time_.until_asleep(1)
        assert sampler.pending == {}
        await sampler.stop()
        await client.aclose()

    with caplog.at_level(logging.INFO, logger="backend.api.stats_sampler"):
        try:
            asyncio.run(scenario())
        finally:
            proxy.cut()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("stats sampler: round failed" in m for m in messages) == 1, messages
    assert "stats sampler: recovered" in messages
    stored = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.stats).items()}
    assert stored == {"rejected:unavailable": 3, "rejected:price": 1}


def test_redis_outage_keeps_rejections_and_the_api_alive(settings: Settings, tmp_path: Path):
    url = urlsplit(settings.effective_redis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    netloc = url.netloc.replace(f"{url.hostname}:{url.port}", f"127.0.0.1:{proxy.port}")
    env = {**stats_env(settings), "REDIS_URL": urlunsplit(url._replace(netloc=netloc))}
    try:
        with running(env, tmp_path) as procs:
            procs.start_api()
            with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=10) as client:
                assert client.post("/ingest/tick", json=tick(1)).status_code == 200
                proxy.cut()
                for i in range(3):
                    r = client.post("/ingest/tick", json=tick(10 + i))
                    assert r.status_code == 503 and r.json()["error"] == "unavailable"
                assert client.post("/ingest/tick", json=tick(20, price=-1)).status_code == 422
                r = client.get("/stats")
                assert r.status_code == 503 and r.json()["error"] == "unavailable"
                assert client.get("/stats/history").status_code == 503
                # A sampler round fails meanwhile (the in-process test above counts several).
                wait_for(
                    lambda: "stats sampler: round failed" in procs.log("api"),
                    10,
                    what="a failed sampler round",
                )
                assert client.get("/health/liveness").status_code == 200
                proxy.restore()
                sample = wait_for(
                    lambda: (
                        (r := client.get("/stats")).status_code == 200
                        and r.json()["rejected"] == {"unavailable": 3, "price": 1}
                        and r.json()
                    ),
                    20,
                    interval=0.2,
                    what="the rejections counted during the outage",
                )
                assert sample["counters"]["ingest_accepted"] == 1
            log = procs.log("api")
        assert log.count("stats sampler: round failed") == 1, log[-3000:]
        assert "stats sampler: recovered" in log
    finally:
        proxy.cut()


def test_split_calc_records_one_latency_per_view_built(settings: Settings, tmp_path: Path):
    split = settings.model_copy(update={"calc_split": True})
    with running(stats_env(split), tmp_path) as procs:
        procs.start_api()
        procs.start_worker()
        with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
            batch = [tick(i) for i in range(10)] + [tick(i, "ETHUSDT") for i in range(10)]
            assert client.post("/ingest/ticks", json=batch).json()["accepted"] == 20
            wait_for(
                lambda: all(
                    client.get(f"/symbols/{s}").json().get("ticks_total") == 10
                    for s in ("BTCUSDT", "ETHUSDT")
                ),
                20,
                what="both views",
            )
            sample = wait_for(
                lambda: (s := client.get("/stats").json())["gauges"]["calc_b_depth"] == 0 and s,
                10,
                what="calc-b drained",
            )
        counters = sample["counters"]
        assert counters["calc_ticks"] == 20 and counters["calc_batches"] >= 1
        # One observation per view built: each calc-a batch held both symbols and queued one
        # calc-b message naming them, so 2 per batch, not one per tick as without the split.
        assert sample["view_latency_le"]["+Inf"] == 2 * counters["calc_batches"]


def test_stats_report_alert_firings_deliveries_and_what_waits(
    settings: Settings, redis_client: Redis, tmp_path: Path
):
    """Firings queued exactly as the evaluator queues them (`queue_firing` in one MULTI) show in
    /stats at once; with no delivery worker their webhook jobs wait, and once one runs, the
    delivered and failed counts and the firing→delivered histogram come through, in /stats and
    in /stats/history, each figure matching the contract model."""
    with (
        running(stats_env(settings), tmp_path) as procs,
        receiving(status(204)) as ok,
        receiving(status(400)) as refusing,
    ):
        procs.start_api()  # no worker: nothing flushes the alert history or delivers yet
        with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
            before = client.get("/stats").json()
            assert before["counters"]["alerts_fired"] == 0
            assert before["alert_delivery_latency_le"]["+Inf"] == 0

            queue_webhook_firings(redis_client, settings, ok.url, n=2)
            queue_webhook_firings(redis_client, settings, refusing.url, n=1)
            sample = client.get("/stats").json()  # a sample taken now: no waiting
            StatsSample.model_validate(sample)
            counters, gauges = sample["counters"], sample["gauges"]
            assert (counters["alerts_fired"], counters["alerts_test_fired"]) == (3, 0)
            assert counters["alerts_delivered"] == 0
            assert gauges["alert_deliveries_waiting"] == 3  # one webhook job per firing
            assert gauges["alert_evaluations_waiting"] == 0
            assert gauges["alert_history_entries"] == 6  # each firing + its "pending" delivery

            procs.start_delivery_worker()

            def delivered() -> dict[str, Any] | None:
                s = client.get("/stats").json()
                c = s["counters"]
                done = c["alerts_delivered"] == 2 and c["alerts_delivery_failed"] == 1
                return s if done and s["gauges"]["alert_deliveries_waiting"] == 0 else None

            sample = wait_for(delivered, 30, interval=0.2, what="the webhooks in /stats")
            StatsSample.model_validate(sample)
            counters = sample["counters"]
            assert counters["alerts_delivery_retries"] == 0
            assert counters["alerts_delivery_dead"] == 0
            latency = sample["alert_delivery_latency_le"]
            assert list(latency) == [*BOUNDS, "30.0", "60.0", "300.0", "+Inf"]
            assert latency["+Inf"] == 2  # the delivered ones only, each once
            assert list(latency.values()) == sorted(latency.values())  # cumulative
            assert len(ok.snapshot()) == 2 and len(refusing.snapshot()) == 1

            def in_history() -> dict[str, Any] | None:
                samples = client.get("/stats/history", params={"minutes": 5}).json()["samples"]
                last = samples[-1] if samples else {}
                done = last.get("counters", {}).get("alerts_delivered") == 2
                return last if done else None

            last = wait_for(in_history, 20, interval=0.2, what="the alert figures in history")
            assert last["counters"]["alerts_fired"] == 3
            assert last["alert_delivery_latency_le"]["+Inf"] == 2
