"""A real Prometheus server scraping a real system with deploy/prometheus/prometheus.yml.

The config is the shipped file with only the target ports (free ones, so tests run side by side)
and the scrape interval (1 s, so the test is short) replaced. Every process must be an `up`
target, and what Prometheus computes from the API's ingest counter must match what this test
itself sent and saw acknowledged: first exactly (the counter value), then through `increase()`
(with a tolerance for Prometheus's extrapolation to the window's edges).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from backend.settings import Settings
from tests.support.load import Load, Stream
from tests.support.processes import Processes, answers_ok, running, settings_env
from tests.support.servers import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ACCEPTED = 'sum(tickstream_ingest_ticks_total{job="api",outcome="accepted"})'
LOAD_TPS = 100.0
LOAD_TICKS = 600  # ~6 s of load


def prometheus_binary() -> str:
    """PROMETHEUS_PATH, else `prometheus` on PATH. Never skipped: without it the test fails and
    says how to install it (`make test` does, through `.ci/ensure-prometheus`)."""
    found = os.environ.get("PROMETHEUS_PATH") or shutil.which("prometheus")
    assert found, "prometheus is not installed: run .ci/ensure-prometheus (make prometheus)"
    return found


def scrape_config_for(ports: dict[str, int]) -> dict[str, Any]:
    """The shipped config, pointed at this test's ports, scraping every second."""
    config = yaml.safe_load(SHIPPED.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(ports), f"deploy/prometheus/prometheus.yml jobs {jobs} != {set(ports)}"
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        for static in job["static_configs"]:
            static["targets"] = [
                f"{target.rsplit(':', 1)[0]}:{ports[job['job_name']]}"
                for target in static["targets"]
            ]
    return config


def query(prom: httpx.Client, expr: str) -> float | None:
    """An instant query's single value (None: no series yet)."""
    body = prom.get("/api/v1/query", params={"query": expr}).raise_for_status().json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def targets_up(prom: httpx.Client) -> dict[str, str]:
    try:
        response = prom.get("/api/v1/targets")
    except httpx.HTTPError:
        return {}
    if response.status_code != 200:  # 503 "Service Unavailable" text while it is starting
        return {}
    body = response.json()
    return {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}


def start_system(settings: Settings, procs: Processes) -> dict[str, int]:
    procs.start_api()
    procs.start_gateway()
    procs.start_worker(processes=2, threads=2)
    procs.start_delivery_worker(threads=2)
    procs.start_history(threads=1)
    procs.start_feeder(TPS="0")  # paused: its ticks would blur the count (it stays a target)
    ports = {
        "api": procs.api_port,
        "gateway": procs.gateway_port,
        "worker": settings.worker_metrics_port,
        "alerts": settings.alerts_metrics_port,
        "history": settings.history_metrics_port,
        "feeder": settings.feeder_metrics_port,
    }
    for job, port in ports.items():
        url = f"http://127.0.0.1:{port}/health/readiness"
        wait_for(lambda url=url: answers_ok(url), 60, what=f"{job} readiness")
    return ports


def test_prometheus_scrapes_every_process_and_counts_what_was_sent(
    settings: Settings, tmp_path: Path
):
    binary = prometheus_binary()
    settings = settings.model_copy(
        update={
            "worker_metrics_port": free_port(),
            "alerts_metrics_port": free_port(),
            "history_metrics_port": free_port(),
            "feeder_metrics_port": free_port(),
        }
    )
    with running(settings_env(settings), tmp_path / "logs") as procs:
        ports = start_system(settings, procs)
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(scrape_config_for(ports)))
        prom_port = free_port()
        procs.spawn(
            "prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=5) as prom:
            wait_for(
                lambda: (up := targets_up(prom)) and set(up) == set(ports)
                and all(h == "up" for h in up.values()),
                60,
                what="every target up",
            )  # fmt: skip

            # A first tick makes the accepted series exist, so the window below has a baseline.
            warm = Load(procs.api_url, Stream(seed=1, dup_rate=0, bad_rate=0), tps=10)
            warm.start()
            wait_for(lambda: warm.acked_count() >= 1, 30, what="a first acknowledged tick")
            first = len(warm.stop().acked)
            wait_for(lambda: query(prom, ACCEPTED) == first, 30, what="the baseline scraped")

            window_start = time.time()
            load = Load(procs.api_url, Stream(seed=2, dup_rate=0, bad_rate=0), tps=LOAD_TPS)
            load.start()
            wait_for(lambda: load.tally.sent >= LOAD_TICKS, 60, what=f"{LOAD_TICKS} ticks sent")
            tally = load.stop()
            acked = len(tally.acked)
            assert acked == tally.sent and not tally.rejected and not tally.given_up

            # Exact: the last scrape of the API's counter equals every tick it acknowledged.
            wait_for(
                lambda: query(prom, ACCEPTED) == first + acked,
                30,
                what=f"Prometheus to see {first + acked} accepted ticks",
            )
            window_s = math.ceil(time.time() - window_start) + 1
            increase = query(
                prom,
                f'sum(increase(tickstream_ingest_ticks_total{{job="api",outcome="accepted"}}'
                f"[{window_s}s]))",
            )
            # increase() scales the sampled rise to the whole window: with 1 s scrapes the
            # samples span at least window - ~2 s of it, so it can overshoot by window/(window-3)
            # at most; it never undershoots a rise that happened entirely inside the window.
            assert increase is not None
            upper = acked * window_s / (window_s - 3)
            assert acked * 0.9 <= increase <= upper, (increase, acked, window_s)

            # The workers' merged metrics made it too: their CPU/RSS per process, and Dramatiq's
            # message counter for the calc work the load caused.
            assert query(prom, 'count(tickstream_worker_cpu_seconds{job="worker"})') == 2
            wait_for(
                lambda: (query(prom, 'sum(dramatiq_messages_total{job="worker"})') or 0) > 0,
                30,
                what="Dramatiq's message counter from the worker processes",
            )
            assert query(prom, 'count(process_resident_memory_bytes{job="feeder"})') == 1
            # The history service's one worker process, through its own fork and job.
            assert query(prom, 'count(tickstream_worker_cpu_seconds{job="history"})') == 1
            # The gateway read the events the load caused from the ring.
            wait_for(
                lambda: (query(prom, 'sum(tickstream_gateway_ring_events_total{job="gateway"})')
                         or 0) > 0,
                30,
                what="the gateway's ring events",
            )  # fmt: skip
        print(f"prometheus: acked={acked} increase={increase:.1f}", file=sys.stderr)
