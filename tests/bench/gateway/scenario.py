"""One measured run: a fresh server process, its clients, the publisher, and what came of it.

Timeline: server ready (RSS idle) -> every client connected (RSS start) -> publishing for
`warmup` s (not counted) -> the window [t0, t1] of `seconds` s: server CPU (utime+stime) and
every event published in it -> publishing stops, a short grace for the last ones to arrive ->
clients stop and report. Latency counts the healthy clients' events whose ring id (publish
time) lies in the window; `expected` is what they should have got (their symbols' events in the
window, read back from the ring), so a lagging or lossy run shows as received < 100 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from backend.bus.realtime import Ring
from tests.bench.gateway.options import Options
from tests.bench.gateway.plan import ClientPlan, plan_clients, split
from tests.bench.gateway.publisher import Publisher
from tests.bench.gateway.summary import latency_summary
from tests.bench.gateway.usage import RssSampler, cpu_seconds, rss_bytes
from tests.bench.text import say
from tests.support.processes import ROOT, Processes, answers_ok, uvicorn_command
from tests.support.servers import free_port
from tests.support.waiting import wait_for

GRACE_S = 2.0
READY_TIMEOUT_S = 180.0


@dataclass
class Setup:
    procs: Processes
    redis_url: str
    ring: Ring
    symbols: list[str]
    work_dir: Path


def start_server(setup: Setup, server: str, clients: int, name: str) -> tuple[int, str]:
    """A fresh server process: (pid, base URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if server == "ours":
        env = {"GATEWAY_MAX_CLIENTS": str(clients + 100), "LOG_LEVEL": "WARNING"}
        proc = setup.procs.start_gateway(name, env, port=port)
    else:
        command = uvicorn_command("tests.bench.gateway.baseline_app:create_app", port)
        proc = setup.procs.spawn(name, [*command, "--no-access-log"], {"LOG_LEVEL": "WARNING"})
        wait_for(lambda: answers_ok(url + "/health/liveness"), 30, what=f"{name} liveness")
    return proc.pid, url


def start_clients(
    setup: Setup, url: str, plans: list[ClientPlan], parts: int, tag: str
) -> list[tuple[subprocess.Popen[str], Path]]:
    started = []
    for k, part in enumerate(split(plans, parts)):
        plan_path = setup.work_dir / f"{tag}-clients{k}.plan.json"
        plan_path.write_text(json.dumps([{"path": p.path, "stalled": p.stalled} for p in part]))
        out = setup.work_dir / f"{tag}-clients{k}.json"
        log = open(setup.work_dir / f"{tag}-clients{k}.log", "w")  # noqa: SIM115 - child's
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.gateway.clients", "--url", url,
             "--plan", str(plan_path), "--out", str(out)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        started.append((proc, out))
    for proc, _ in started:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("ready"):
            raise RuntimeError(f"a client process failed to connect its clients: {line!r}")
    return started


def stop_clients(
    started: list[tuple[subprocess.Popen[str], Path]], t0: float, t1: float
) -> tuple[list[dict[str, Any]], list[float]]:
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    for proc, _ in started:
        assert proc.stdin is not None
        proc.stdin.write(f"stop {t0} {t1}\n")
        proc.stdin.flush()
    for proc, out in started:
        proc.wait(120)
        rows += json.loads(out.read_text())["clients"]
        lat = array("f")
        lat.frombytes(Path(str(out) + ".lat").read_bytes())
        latencies += lat.tolist()
    return rows, latencies


def published_per_symbol(redis: Redis, ring: Ring, t0: float, t1: float) -> Counter[str]:
    """How many events each symbol had with a ring id (publish time) in [t0, t1]."""
    counts: Counter[str] = Counter()
    start = f"{int(t0)}-0"
    while True:
        batch: Any = redis.xrange(ring.key, start, f"{int(t1)}-99999999", count=10_000)
        if not batch:
            return counts
        for _id, fields in batch:
            counts[fields.get(b"s", b"").decode()] += 1
        start = "(" + batch[-1][0].decode()


def gateway_counters(url: str) -> dict[str, Any]:
    """/metrics totals and the per-client counters of /clients."""
    metrics: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("tickstream_gateway_") and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if "{" not in name and name.endswith("_total"):
                metrics[name] = float(value)
    clients = httpx.get(url + "/clients", timeout=30).json()
    return {"metrics": metrics, "clients": clients}


def run_scenario(
    setup: Setup, opts: Options, server: str, stalled: bool, run_no: int
) -> dict[str, Any]:
    tag = f"{server}-{'stalled' if stalled else 'healthy'}-{run_no}"
    name = f"server-{tag}"
    pid, url = start_server(setup, server, opts.clients, name)
    redis = Redis.from_url(setup.redis_url)
    try:
        rss_idle = rss_bytes(pid)
        plans = plan_clients(
            opts.clients, setup.symbols, opts.per_client,
            stalled_share=opts.stalled_share if stalled else 0.0, all_share=opts.all_share,
            stalled_follow_all=opts.stalled_follow == "all",
        )  # fmt: skip
        started = start_clients(setup, url, plans, opts.client_procs, tag)
        time.sleep(0.5)  # let the snapshots go out before RSS "start"
        rss_start = rss_bytes(pid)
        sampler = RssSampler(pid)
        sampler.start()
        publisher = Publisher(
            setup.redis_url, setup.ring, setup.symbols,
            rate=opts.rate, tick_share=opts.tick_share, batch_ms=opts.batch_ms,
        )  # fmt: skip
        publisher.start()
        time.sleep(opts.warmup)
        t0, cpu0, n0 = time.time() * 1000, cpu_seconds(pid), publisher.appended
        client_cpu0 = sum(cpu_seconds(p.pid) for p, _ in started)
        time.sleep(opts.seconds)
        t1, cpu1, n1 = time.time() * 1000, cpu_seconds(pid), publisher.appended
        client_cpu1 = sum(cpu_seconds(p.pid) for p, _ in started)
        load_1m = os.getloadavg()[0]  # a shared machine's other work shows here
        publisher.stop()
        if publisher.error is not None:
            raise RuntimeError(f"the publisher failed: {publisher.error}")
        time.sleep(GRACE_S)
        sampler.stop()
        rss_end = rss_bytes(pid)
        counters = gateway_counters(url) if server == "ours" else None
        rows, latencies = stop_clients(started, t0, t1)
        published = published_per_symbol(redis, setup.ring, t0, t1)
    finally:
        redis.close()
        setup.procs.kill(name)
    window_s = (t1 - t0) / 1000
    # The rows come back process by process: pair them with the plans in that order.
    in_order = [p for part in split(plans, opts.client_procs) for p in part]
    healthy = [(p, r) for p, r in zip(in_order, rows, strict=True) if not p.stalled]
    assert all(r["stalled"] == p.stalled for p, r in zip(in_order, rows, strict=True))
    expected = sum(
        sum(published.values()) if p.symbols is None else sum(published[s] for s in p.symbols)
        for p, _ in healthy
    )
    deliveries = len(latencies)
    cpu_s = cpu1 - cpu0
    result: dict[str, Any] = {
        "server": server,
        "stalled": stalled,
        "run": run_no,
        "clients": len(plans),
        "healthy_clients": len(healthy),
        "stalled_clients": len(plans) - len(healthy),
        "refused": sum(1 for r in rows if r["status"] != 200),
        "healthy_without_events": sum(1 for _, r in healthy if not r.get("events")),
        "window_s": round(window_s, 3),
        "published": n1 - n0,
        "published_per_s": round((n1 - n0) / window_s, 1),
        "late_batches": publisher.late_batches,
        "deliveries": deliveries,
        "expected": expected,
        "received_share": deliveries / expected if expected else None,
        "deliveries_per_s": round(deliveries / window_s, 1),
        "latency_ms": latency_summary(latencies),
        "cpu_s": round(cpu_s, 3),
        "cpu_share": round(cpu_s / window_s, 3),
        "cpu_ms_per_1000": round(cpu_s * 1000 / deliveries * 1000, 2) if deliveries else None,
        "load_1m": round(load_1m, 2),
        "client_procs_cpu_share": round((client_cpu1 - client_cpu0) / window_s, 3),
        "rss": {
            "idle": rss_idle,
            "start": rss_start,
            "peak": max([rss_start, rss_end, *(r for _, r in sampler.samples)]),
            "end": rss_end,
        },
        "rss_samples": sampler.samples,
        "client_rows": rows,
    }
    if counters is not None:
        result["gateway"] = stalled_counters(counters, rows)
    say(
        f"{tag}: {deliveries:,} deliveries ({result['deliveries_per_s']:,.0f}/s, "
        f"{(result['received_share'] or 0) * 100:.1f} % of expected), "
        f"p50 {result['latency_ms']['p50']} ms p99 {result['latency_ms']['p99']} ms, "
        f"CPU {result['cpu_share'] * 100:.0f} %"
    )
    return result


def stalled_counters(counters: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Coalesced / dropped / queued of the stalled and of the healthy clients, from GET
    /clients (each told apart by its `remote` port, which the client processes report)."""
    stalled_ports = {r["port"] for r in rows if r["stalled"]}
    groups: dict[str, list[dict[str, Any]]] = {"stalled": [], "healthy": []}
    for c in counters["clients"]:
        port = int(str(c["remote"]).rpartition(":")[2] or 0)
        groups["stalled" if port in stalled_ports else "healthy"].append(c)
    out: dict[str, Any] = {"metrics": counters["metrics"]}
    for label, group in groups.items():
        out[label] = {
            "clients": len(group),
            "delivered": sum(c["delivered"] for c in group),
            "coalesced": sum(c["coalesced"] for c in group),
            "dropped": sum(c["dropped"] for c in group),
            "missed_reports": sum(c["missed_reports"] for c in group),
            "queued_max": max((c["queued"] for c in group), default=0),
        }
    return out
