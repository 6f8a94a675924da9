"""The system's own accounts of a run: Redis's CPU per command and its latency monitor, and
the API's ack-latency histogram."""

from __future__ import annotations

import time

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

LATENCY_THRESHOLD_MS = 50  # Redis latency monitor: record stalls at least this long
TIMEOUT_S = 120  # a Redis busy rewriting its AOF after a big batch run answers late, not never


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=10)


def wait_settled(url: str, timeout: float = 300.0) -> float:
    """Until Redis rewrites no AOF (a big batch run leaves one behind: its fork and writes
    would land on the next run); the seconds waited."""
    client = _client(url)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            p = client.info("persistence")
            if not (p.get("aof_rewrite_in_progress") or p.get("aof_rewrite_scheduled")):
                break
            time.sleep(0.5)
    finally:
        client.close()
    return time.monotonic() - started


def redis_command_usec(url: str) -> dict[str, tuple[int, int]]:
    """Redis's own CPU accounting per command (INFO commandstats): name -> (calls, µs)."""
    client = _client(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
        if isinstance(v, dict)
    }


def redis_main_thread_cpu(url: str) -> float:
    """CPU seconds Redis's main thread has used (INFO cpu, user + sys): every command once,
    whether called by a client, inside a script or inside MULTI/EXEC, plus what commandstats
    leaves out (reading, parsing, replying, the event loop, expiry). That one thread is what
    caps a Redis, so it is the figure Redis CPU per tick is measured with."""
    client = _client(url)
    try:
        cpu = client.info("cpu")
    finally:
        client.close()
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


def redis_stalls(url: str, reset: bool = True) -> dict[str, int]:
    """Redis's own latency monitor: per event (fork, aof-write-pending-fsync, command, ...) the
    worst stall in ms since the last reset (events over LATENCY_THRESHOLD_MS only)."""
    client = _client(url)
    try:
        latest = client.execute_command("LATENCY", "LATEST")
        if reset:
            client.execute_command("LATENCY", "RESET")
    finally:
        client.close()
    out = {}
    for event, _ts, _last, worst, *_ in latest:
        out[event.decode() if isinstance(event, bytes) else str(event)] = int(worst)
    return out


def redis_cost(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], ticks: int
) -> dict[str, dict[str, float]]:
    """Per command: µs of Redis CPU per accepted tick and calls per 1,000 ticks, costliest first.

    A breakdown, not a total: a script's time counts under `eval`/`evalsha`/`fcall` and a
    transaction's under `exec`, and the commands inside them count under their own names as
    well, so the rows overlap (summing them double counts). The total is
    `redis_main_thread_cpu`."""
    out = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if usec > u0 and ticks:
            out[name] = {
                "us_per_tick": round((usec - u0) / ticks, 3),
                "calls_per_1k": round((calls - c0) / ticks * 1000, 1),
            }
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["us_per_tick"]))


def api_ack_buckets(url: str, headers: dict[str, str]) -> dict[float, float]:
    """The API's own ingest-latency histogram (request received → acknowledged), cumulative
    counts per upper bound, summed over endpoints. With several API processes, /metrics is
    answered by one of them: then it is that process's view."""
    try:
        text = httpx.get(f"{url}/metrics", headers=headers, timeout=5).text
    except httpx.HTTPError:
        return {}
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "tickstream_ingest_latency_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                out[le] = out.get(le, 0.0) + sample.value
    return out


def bucket_quantiles(
    before: dict[float, float], after: dict[float, float]
) -> dict[str, float | None]:
    """Upper bounds (ms) of the buckets holding p50 and p99 of the requests in between."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0

    def bound(q: float) -> float | None:
        for le, count in delta:
            if total and count >= q * total:
                return le * 1000
        return None

    return {"requests": total, "p50_le_ms": bound(0.5), "p99_le_ms": bound(0.99)}
