"""The Dramatiq services' /health/* and /metrics, served by a fork of `python -m tasks ...`.

Real processes against real Redis: the fork answers for all worker processes, a worker whose
Redis stops answering is not ready (and is again once it is back), one whose PostgreSQL stops
answering stays ready but says `degraded`, and a busy metrics port costs the endpoints only,
never the workers.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from backend.settings import Settings
from tests.support.processes import AUTH, running, settings_env
from tests.support.servers import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=3).status_code
    except httpx.HTTPError:
        return None


def test_worker_ready_only_while_redis_answers(settings: Settings, tmp_path: Path):
    redis = urlsplit(settings.effective_redis_url)
    proxy = TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    via_proxy = settings.effective_redis_url.replace(
        f"{redis.hostname}:{redis.port}", f"127.0.0.1:{proxy.port}"
    )
    port = free_port()
    settings = settings.model_copy(update={"redis_url": via_proxy, "worker_metrics_port": port})
    base = f"http://127.0.0.1:{port}"
    with running(settings_env(settings), tmp_path) as procs:
        procs.start_worker(processes=2, threads=1)
        wait_for(lambda: status(base + "/health/readiness") == 200, 60, what="worker ready")
        wait_for(
            lambda: httpx.get(base + "/metrics", timeout=5).text.count(
                "tickstream_worker_resident_memory_bytes{"
            ) == 2,
            30,
            what="one RSS series per worker process",
        )  # fmt: skip
        metrics = httpx.get(base + "/metrics", timeout=5)  # loopback: allow-listed, no key
        assert "# TYPE tickstream_worker_cpu_seconds gauge" in metrics.text

        proxy.cut()
        wait_for(lambda: status(base + "/health/readiness") == 503, 30, what="not ready")
        body = httpx.get(base + "/health/readiness", timeout=5).json()
        assert body["status"] == "not_ready" and body["checks"]["redis"]["ok"] is False
        assert status(base + "/health/liveness") == 200  # alive, just not ready

        proxy.restore()
        wait_for(lambda: status(base + "/health/readiness") == 200, 30, what="ready again")


def readiness(url: str) -> tuple[int, dict]:
    response = httpx.get(url, timeout=5)
    return response.status_code, response.json()


def test_worker_without_postgres_is_degraded_not_unready(settings: Settings, tmp_path: Path):
    pg = urlsplit(settings.psycopg_url)
    proxy = TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432).start()
    via_proxy = settings.psycopg_url.replace(f"{pg.hostname}:{pg.port}", f"127.0.0.1:{proxy.port}")
    port = free_port()
    settings = settings.model_copy(update={"pg_url": via_proxy, "worker_metrics_port": port})
    url = f"http://127.0.0.1:{port}/health/readiness"
    with running(settings_env(settings), tmp_path) as procs:
        procs.start_worker(processes=1, threads=1)
        wait_for(lambda: status(url) == 200, 60, what="worker ready")
        code, body = readiness(url)
        assert body["checks"]["postgres"]["ok"] is True and body["degraded"] == []

        proxy.cut()
        wait_for(lambda: readiness(url)[1]["degraded"] == ["postgres"], 30, what="degraded")
        code, body = readiness(url)
        assert code == 200 and body["status"] == "ready"  # calc still works without Postgres
        assert body["checks"]["postgres"]["ok"] is False and body["checks"]["redis"]["ok"]

        proxy.restore()
        wait_for(lambda: readiness(url)[1]["degraded"] == [], 30, what="postgres back")


def test_a_busy_port_costs_the_endpoints_not_the_workers(settings: Settings, tmp_path: Path):
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    settings = settings.model_copy(
        update={"alerts_metrics_port": port, "worker_metrics_port": port}
    )
    try:
        with running(settings_env(settings), tmp_path) as procs:
            procs.start_api()
            procs.start_worker()
            wait_for(lambda: "cannot listen on" in procs.log("worker"), 60, what="the port error")
            # The workers still do their job: a tick reaches its view.
            tick = {"symbol": "BTCUSDT", "price": 1.5, "volume": 1, "source": "binance",
                    "ts": int(time.time() * 1000) - 1000, "event_id": "ops-busy-1"}  # fmt: skip
            with httpx.Client(base_url=procs.api_url, timeout=5) as api:
                assert api.post("/ingest/tick", json=tick, auth=AUTH).status_code == 200
                wait_for(
                    lambda: api.get("/symbols/BTCUSDT").status_code == 200,
                    30,
                    what="the tick's view",
                )
            assert procs.procs["worker"].poll() is None
    finally:
        taken.close()
