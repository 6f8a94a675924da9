"""The benchmark's phases on one system: the replay at `max` over everything stored, then the
live-latency rounds (without / with a replay running)."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import psutil
import psycopg
from redis import Redis

from backend.bus.keys import Keys
from backend.core.ticks import parse_ts_us, us_to_iso
from backend.settings import Settings
from tests.bench.pipeline import bench as pipeline_bench
from tests.bench.pipeline import report as pipeline_report
from tests.bench.pipeline.counters import api_ack_buckets, bucket_quantiles
from tests.bench.pipeline.options import Options as PipelineOptions
from tests.bench.pipeline.procs import tree_cpu
from tests.bench.replay.options import Options
from tests.bench.replay.sampler import MB, BackendCpu, ReplaySampler, sample_json
from tests.bench.replay.seed import Seeded
from tests.bench.text import fmt_int, say
from tests.support.processes import Processes, answers_ok, uvicorn_command
from tests.support.waiting import wait_for

API_KEY = "replay-bench-key"
HEADERS = {"x-api-key": API_KEY}
TERMINAL = ("done", "cancelled", "failed")
WORKER_PROCESSES, WORKER_THREADS = 2, 4  # the Procfile's defaults


def start_system(procs: Processes, settings: Settings, opts: Options) -> None:
    """API, gateway, live workers and the `history` service, as the Procfile runs them."""
    procs.env["API_KEY"] = API_KEY
    # Everything spawned at once, then waited for: they import side by side.
    procs.start_worker(processes=WORKER_PROCESSES, threads=WORKER_THREADS)
    procs.start_history(threads=opts.history_threads)
    gateway = ["--host", "127.0.0.1", "--port", str(procs.gateway_port)]
    procs.spawn("gateway", [sys.executable, "-m", "backend.gateway", *gateway])
    api = uvicorn_command("backend.api.app:create_app", procs.api_port)
    procs.spawn("api", api, {"GATEWAY_PUBLIC_URL": procs.gateway_url})
    for url in (procs.gateway_url + "/health/readiness", procs.api_url + "/health/liveness"):
        wait_for(lambda url=url: answers_ok(url), 60, what=url)
    keys = Keys.from_settings(settings)
    with Redis.from_url(settings.effective_redis_url) as redis:
        # Two live worker processes and the history service's one all beat in the same set.
        wait_for(lambda: redis.zcard(keys.heartbeats) >= WORKER_PROCESSES + 1, 60,
                 what="worker and history heartbeats")  # fmt: skip


def start_replay(client: httpx.Client, seeded: Seeded) -> str:
    body = {
        "symbols": list(seeded.symbols),
        "from": us_to_iso(seeded.from_us),
        "to": us_to_iso(seeded.to_us),
        "speed": "max",
    }
    response = client.post("/replays", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def status(client: httpx.Client, replay_id: str) -> dict[str, Any]:
    response = client.get(f"/replays/{replay_id}")
    response.raise_for_status()
    return dict(response.json())


def redis_pid(redis: Redis) -> int | None:
    pid = int(redis.info("server").get("process_id", 0))
    return pid if pid and psutil.pid_exists(pid) else None


def postmaster_pid(pg_url: str) -> int | None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        return psutil.Process(int(row[0])).ppid() if row else None  # a backend's parent
    except psutil.Error:
        return None


def namespace_memory(
    redis: Redis, settings: Settings, replay_id: str, symbols: Sequence[str]
) -> dict[str, Any]:
    """Keys and bytes (MEMORY USAGE) of the replay's namespace, per kind of key (the symbol in
    its name replaced by `*`), and of its record."""
    keys = Keys.from_settings(settings)
    prefix = keys.for_replay(replay_id).namespace + ":"
    by_kind: dict[str, list[int]] = {}
    for raw in redis.scan_iter(match=prefix + "*", count=1000):
        name = raw.decode()
        size = int(redis.memory_usage(name) or 0)
        kind = ":".join("*" if part in symbols else part for part in name[len(prefix) :].split(":"))
        cell = by_kind.setdefault(kind, [0, 0])
        cell[0] += 1
        cell[1] += size
    record = int(redis.memory_usage(keys.replay_record(replay_id)) or 0)
    return {
        "keys": sum(c[0] for c in by_kind.values()),
        "bytes": sum(c[1] for c in by_kind.values()),
        "record_bytes": record,
        "by_kind": {k: {"keys": c[0], "bytes": c[1]}
                    for k, c in sorted(by_kind.items(), key=lambda kv: -kv[1][1])},
    }  # fmt: skip


# --- the replay at max ---------------------------------------------------------------------------
def replay_at_max(
    procs: Processes, settings: Settings, seeded: Seeded, admin_url: str, opts: Options
) -> dict[str, Any]:
    """One replay at `max` over every stored tick, sampled every `sample_s` until it is done."""
    history = procs.procs["history"].pid
    with (
        httpx.Client(base_url=procs.api_url, headers=HEADERS, timeout=10) as client,
        Redis.from_url(settings.effective_redis_url) as redis,
    ):
        used_before = int(redis.info("memory")["used_memory"])
        backends = BackendCpu(admin_url, seeded.url.rsplit("/", 1)[1])
        replay_id = start_replay(client, seeded)
        sampler = ReplaySampler(
            client, replay_id, history, redis_pid(redis), postmaster_pid(admin_url), backends,
            interval=opts.sample_s,
        )  # fmt: skip
        first = sampler.sample()  # the baseline: before the replay took any CPU
        sampler.start()
        profile = _profile(procs, opts, sampler) if opts.profile is not None else None
        deadline = time.monotonic() + opts.replay_timeout_s
        last_said = 0.0
        while sampler.is_alive() and time.monotonic() < deadline:
            sampler.join(timeout=0.5)  # returns as soon as the sampler saw the replay finish
            if sampler.samples and time.monotonic() - last_said >= 30:
                s = sampler.samples[-1]
                say(f"  replay {s.state}: {fmt_int(s.ticks_applied)} / {fmt_int(s.ticks_total)} "
                    f"ticks, {s.rate:,.0f} ticks/s, history RSS "
                    f"{(s.rss_parent + s.rss_children) / MB:,.0f} MB")  # fmt: skip
                last_said = time.monotonic()
        timed_out = sampler.is_alive()
        samples = sampler.stop()
        final = status(client, replay_id)
        if timed_out:
            client.post(f"/replays/{replay_id}/cancel")
        memory = namespace_memory(redis, settings, replay_id, seeded.symbols)
        used_after = int(redis.info("memory")["used_memory"])
        backends.close()
    assert first is not None
    return summarize_max(samples, first, final, memory, used_before, used_after, timed_out) | (
        {"profile": profile} if profile is not None else {}
    )


def _profile(procs: Processes, opts: Options, sampler: ReplaySampler) -> dict[str, Any] | None:
    """py-spy (every thread, idle ones too) on the history worker child for `profile_s`, once
    the replay runs; the samples of the thread driving it, summarized."""
    wait_for(lambda: sampler.samples and sampler.samples[-1].ticks_applied > 0, 120,
             what="replay progress before profiling")  # fmt: skip
    kids = psutil.Process(procs.procs["history"].pid).children(recursive=True)
    if not kids or opts.profile is None:
        return None
    opts.profile.mkdir(parents=True, exist_ok=True)
    out = opts.profile / "history.txt"
    spy = str(Path(sys.executable).parent / "py-spy")
    args = [spy, "record", "--format", "raw", "--idle", "--threads", "--nonblocking", "-r", "100",
            "-d", str(int(opts.profile_s)), "-o", str(out), "-p", str(kids[0].pid)]  # fmt: skip
    say(f"  profiling the history worker (pid {kids[0].pid}) for {opts.profile_s:.0f} s")
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not out.exists():
        return None
    driving = "\n".join(line for line in out.read_text().splitlines() if "run_slice" in line)
    top = pipeline_report.top_functions(driving, n=12)
    return {"samples": top["samples"], "breakdown_pct": profile_breakdown(driving),
            "self_pct": top["self_pct"], "raw": str(out)}  # fmt: skip


# (part of the driver, frames that place a stack in it), first match wins.
PARTS = (
    ("read md_ticks", ("ticks_after", "_symbol_ticks")),
    ("candles merge (commit)", ("_merged_candles",)),
    ("commit, other", ("ReplayProgressStore.commit", "ReplayProgressStore.begin")),
    ("calc apply_batch", ("apply_batch",)),
)


def profile_breakdown(raw: str) -> dict[str, float]:
    """% of the driving thread's samples (idle included) per part of the driver and what it
    was doing there: waiting on PostgreSQL, waiting on Redis, or running Python."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        part = next((p for p, names in PARTS if any(x in stack for x in names)), "other")
        leaf = frames[-1]
        if "Connection.wait" in leaf:
            doing = "waiting on PostgreSQL"
        elif "read_from_socket" in leaf or "send_packed_command" in leaf:
            doing = "waiting on Redis"
        else:
            doing = "CPU"
        key = f"{part}: {doing}"
        counts[key] = counts.get(key, 0) + int(n)
        total += int(n)
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    return {k: round(100 * v / total, 1) for k, v in ordered} if total else {}


RATE_WINDOW_S = 10.0


def window_rates(samples: list[Any], window_s: float) -> list[float]:
    """Ticks/s from each sample to the first one `window_s` later. The status moves a group
    (up to 5,000 ticks) at a time, so per-second differences are mostly 0 or a whole group."""
    out = []
    j = 0
    for a in samples:
        while j < len(samples) and samples[j].t < a.t + window_s:
            j += 1
        if j == len(samples):
            break
        b = samples[j]
        out.append((b.ticks_applied - a.ticks_applied) / (b.t - a.t))
    return out


def summarize_max(
    samples: list[Any],
    first: Any,
    final: dict[str, Any],
    memory: dict[str, int],
    used_before: int,
    used_after: int,
    timed_out: bool,
) -> dict[str, Any]:
    # Deciles of what was replayed: of everything, or of what a cancelled run got through.
    total = int(final["ticks_applied"] if final["state"] != "done" else final["ticks_total"]) or 1
    running = [s for s in samples if s.ticks_applied > 0]
    rates = window_rates([s for s in running if s.state == "running"], RATE_WINDOW_S)
    # The curve: the first sample past each 10 % of the run.
    curve = []
    for decile in range(1, 11):
        target = total * decile / 10
        reached = [s for s in samples if s.ticks_applied >= target]
        pick = reached[0] if reached else (samples[-1] if samples else first)
        curve.append(
            {"pct": decile * 10} | sample_json(pick, first.t)
            | {"rss_mb": round((pick.rss_parent + pick.rss_children) / MB, 1)}
        )  # fmt: skip
    last = samples[-1] if samples else first
    wall = last.t - first.t
    started, finished = final.get("started_at"), final.get("finished_at")
    overall = None
    if started and finished:
        seconds = (parse_ts_us(finished) - parse_ts_us(started)) / 1e6
        overall = int(final["ticks_applied"]) / seconds if seconds > 0 else None
    rss_all = [(s.rss_parent + s.rss_children) / MB for s in running] or [0.0]

    def cpu_share(get: Any) -> float | None:
        a, b = get(first.cpu), get(last.cpu)
        return round((b - a) / wall, 3) if a is not None and b is not None and wall > 0 else None

    def cpu_per_1k(get: Any) -> float | None:
        a, b = get(first.cpu), get(last.cpu)
        done = last.ticks_applied - first.ticks_applied
        return round((b - a) / done * 1000, 4) if a is not None and b is not None and done else None

    return {
        "state": final["state"],
        "timed_out": timed_out,
        "ticks_total": final["ticks_total"],
        "ticks_applied": final["ticks_applied"],
        "wall_s": round(wall, 1),
        "rate_median": statistics.median(rates) if rates else None,
        "rate_overall": overall,
        "rate_api": final["rate"],
        "rss_mb": {
            "first": round(rss_all[0], 1),
            "max": round(max(rss_all), 1),
            "last": round(rss_all[-1], 1),
            "at_10pct": curve[0]["rss_mb"],
            "growth_10pct_to_end": round(rss_all[-1] - curve[0]["rss_mb"], 1),
        },
        "cpu_cores": {
            "history": cpu_share(lambda c: c.history),
            "redis-server (whole server)": cpu_share(lambda c: c.redis),
            "postgres (this database's backends, ≥)": cpu_share(lambda c: c.postgres_db),
            "postgres (whole server, ≤)": cpu_share(lambda c: c.postgres_all),
        },
        # CPU seconds per 1,000 ticks replayed: what noise on a shared box does not change much.
        "cpu_s_per_1k": {
            "history": cpu_per_1k(lambda c: c.history),
            "postgres (this database's backends, ≥)": cpu_per_1k(lambda c: c.postgres_db),
        },
        "curve": curve,
        "samples": [sample_json(s, first.t) for s in samples],
        "redis": {
            "namespace_keys": memory["keys"],
            "namespace_bytes": memory["bytes"],
            "record_bytes": memory["record_bytes"],
            "by_kind": memory["by_kind"],
            "used_memory_before": used_before,
            "used_memory_after": used_after,
        },
    }


# --- live latency with and without a replay ------------------------------------------------------
def live_phase(procs: Processes, opts: Options, seed: int, work: Path, name: str) -> dict[str, Any]:
    """The pipeline benchmark's feeder (single ticks at `live_tps`, its ack and ingest→view
    latencies) for `phase_s`; CPU per process group over the phase."""
    popts = PipelineOptions(duration=opts.phase_s, single_tps=opts.live_tps,
                            batch_tps=opts.live_tps, batch_linger_ms=opts.batch_linger_ms,
                            symbols=opts.live_symbols)  # fmt: skip
    system = SimpleNamespace(url=procs.api_url, env=procs.env)
    groups = {g: procs.procs[g].pid for g in ("api", "worker", "gateway", "history")}
    acks0 = api_ack_buckets(procs.api_url, HEADERS)
    cpu0, t0 = {g: tree_cpu(p) for g, p in groups.items()}, time.monotonic()
    result, tail = pipeline_bench.run_feeder(
        system, opts.live_mode, popts, seed, work / f"{name}.json"
    )  # type: ignore[arg-type]
    wall = time.monotonic() - t0
    # The API's own histogram (received → acked): tells a slow server from a starved client.
    api_ack = bucket_quantiles(acks0, api_ack_buckets(procs.api_url, HEADERS))
    cpu = {g: round((tree_cpu(p) - cpu0[g]) / wall, 3) for g, p in groups.items()}
    if result is None:
        return {"ok": False, "error": tail, "cpu_cores": cpu}
    return {
        "ok": bool(result["verification"]["exactly_once"]),
        "accepted": result["accepted"],
        "accepted_tps": result["achieved_tps"],
        "ack_ms": result["ack_ms"],
        "api_ack_ms": api_ack,
        "view_ms": result["view_ms"],
        "errors": result["errors"],
        "cpu_cores": cpu,
    }


def latency_rounds(
    procs: Processes, seeded: Seeded, opts: Options, work: Path
) -> list[dict[str, Any]]:
    rounds = []
    with httpx.Client(base_url=procs.api_url, headers=HEADERS, timeout=10) as client:
        for k in range(1, opts.rounds + 1):
            without = live_phase(procs, opts, 2 * k, work, f"without-{k}")
            say(f"round {k} without a replay: {_one_line(without)}")
            replay_id = start_replay(client, seeded)
            before = wait_for(
                lambda rid=replay_id: (s := status(client, rid))["ticks_applied"] > 0 and s,
                120, what="the replay under way",
            )  # fmt: skip
            t0 = time.monotonic()
            with_ = live_phase(procs, opts, 2 * k + 1, work, f"with-{k}")
            after = status(client, replay_id)
            span = time.monotonic() - t0
            with_["replay"] = {
                "id": replay_id,
                "running_at_end": after["state"] == "running",
                "ticks_during": after["ticks_applied"] - before["ticks_applied"],
                "rate_during": (after["ticks_applied"] - before["ticks_applied"]) / span,
            }
            if after["state"] not in TERMINAL:
                with contextlib.suppress(httpx.HTTPError):
                    client.post(f"/replays/{replay_id}/cancel")
                wait_for(lambda rid=replay_id: status(client, rid)["state"] in TERMINAL, 60,
                         what="the replay cancelled")  # fmt: skip
            say(f"round {k} with a replay at max: {_one_line(with_)}; replay "
                f"{with_['replay']['rate_during']:,.0f} ticks/s meanwhile, still running at "
                f"the end: {'yes' if with_['replay']['running_at_end'] else 'NO'}")  # fmt: skip
            rounds.append({"round": k, "without": without, "with": with_})
    return rounds


def _one_line(phase: dict[str, Any]) -> str:
    if not phase["ok"]:
        return f"FAILED {phase.get('error', '')[-300:]}"
    a, v = phase["ack_ms"], phase["view_ms"]
    return (
        f"{phase['accepted_tps']:,.0f} ticks/s accepted, ack p50 {a['p50']:.1f} / p99 "
        f"{a['p99']:.1f} ms, ingest→view p50 {v['p50']:.1f} / p95 {v['p95']:.1f} ms"
    )


LATENCY_METRICS = {
    "ack_p50": ("ack ms p50", lambda p: p["ack_ms"]["p50"]),
    "ack_p99": ("ack ms p99", lambda p: p["ack_ms"]["p99"]),
    "view_p50": ("ingest→view ms p50", lambda p: p["view_ms"]["p50"]),
    "view_p95": ("ingest→view ms p95", lambda p: p["view_ms"]["p95"]),
    "api_ack_p50": ("ack ms p50 in the API ≤", lambda p: p["api_ack_ms"]["p50_le_ms"]),
    "api_ack_p99": ("ack ms p99 in the API ≤", lambda p: p["api_ack_ms"]["p99_le_ms"]),
    "accepted_tps": ("accepted ticks/s", lambda p: p["accepted_tps"]),
}


def summarize_latency(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: the median over rounds without and with a replay, and with / without."""
    out: dict[str, Any] = {}
    for key, (_, get) in LATENCY_METRICS.items():
        cells = {}
        for phase in ("without", "with"):
            values = [get(r[phase]) for r in rounds if r[phase]["ok"] and get(r[phase]) is not None]
            cells[phase] = statistics.median(values) if values else None
        a, b = cells["without"], cells["with"]
        cells["ratio"] = b / a if a and b is not None else None
        out[key] = cells
    replays = [r["with"].get("replay", {}) for r in rounds]
    rates = [p["rate_during"] for p in replays if "rate_during" in p]
    out["replay_rate_during"] = statistics.median(rates) if rates else None
    out["replay_running_at_end"] = all(p.get("running_at_end") for p in replays) and bool(replays)
    out["cpu_cores"] = {
        phase: {
            g: statistics.median([r[phase]["cpu_cores"][g] for r in rounds])
            for g in rounds[0][phase]["cpu_cores"]
        }
        for phase in ("without", "with")
    } if rounds else {}  # fmt: skip
    out["ok"] = all(r[p]["ok"] for r in rounds for p in ("without", "with"))
    return out
