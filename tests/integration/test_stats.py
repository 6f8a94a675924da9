"""GET /stats and /stats/history against real Redis, Postgres, API and worker processes.

The counters must equal exactly what was sent, whichever replica answered; N API replicas must
write one sample per slot; a Redis outage must lose no rejection counts and never stop the API.
"""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from redis import Redis

from backend.bus.keys import Keys
from backend.config import Settings
from tests.support.processes import AUTH, running, settings_env
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

INTERVAL = 0.3
BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]


def stats_env(settings: Settings) -> dict[str, str]:
    return {**settings_env(settings), "STATS_INTERVAL": str(INTERVAL)}


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


def test_two_api_replicas_write_one_sample_per_slot(
    settings: Settings, tmp_path: Path, redis_client: Redis
):
    env = stats_env(settings)
    key = Keys.from_settings(settings).stats_samples
    with running(env, tmp_path / "a") as a, running(env, tmp_path / "b") as b:
        a.start_api()
        b.start_api()
        started = redis_client.xlen(key)
        wait_for(lambda: redis_client.xlen(key) >= started + 15, 30, what="15 more samples")
        # Both replicas answer ingest and both count toward the same pipeline-wide totals.
        for procs, offset in ((a, 0), (b, 100)):
            with httpx.Client(base_url=procs.api_url, auth=AUTH, timeout=5) as client:
                batch = [tick(offset + i) for i in range(3)] + [tick(offset + 50, price=-1)]
                assert client.post("/ingest/ticks", json=batch).json()["accepted"] == 3
        with httpx.Client(base_url=a.api_url, timeout=5) as client:
            wait_for(
                lambda: (
                    (s := client.get("/stats").json())["counters"]["ingest_accepted"] == 6
                    and s["rejected"] == {"price": 2}
                ),
                10,
                what="both replicas' counts in /stats",
            )
        entries = redis_client.xrange(key)
        slots = [int(fields[b"slot"]) for _, fields in entries]
        # Each replica tries every slot; SET NX lets exactly one of them write it.
        assert len(slots) == len(set(slots)), "two samples were written for one slot"
        assert slots == sorted(slots)
        # From the API: never more samples than slots elapsed (with both replicas writing
        # every slot there would be about twice as many).
        with httpx.Client(base_url=b.api_url, timeout=5) as client:
            samples = client.get("/stats/history", params={"minutes": 1}).json()["samples"]
        span_s = (samples[-1]["ts_us"] - samples[0]["ts_us"]) / 1_000_000
        assert len(samples) >= 15
        assert len(samples) <= span_s / INTERVAL + 2


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
                time.sleep(INTERVAL * 6)  # several sampler rounds fail meanwhile
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
