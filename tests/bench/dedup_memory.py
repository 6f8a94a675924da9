"""`python -m tests.bench.dedup_memory [--count N] [--redis-url URL] [--embedded]`: what one
remembered event_id costs Redis, before (one `SET <ns>:dedup:<event_id> <content>` string per
event_id, the pre-compact `ingest.lua`, kept beside this module) and now (digests in generation x
shard hashes, backend/core/dedup.py), both through the real ingest script.

Per variant, N unique ticks (36-character uuid event_ids) go through the script in batches:
- bytes per event_id: INFO `used_memory` after minus before, once the queue/outbox keys the
  script also writes are deleted (only the de-dup memory is left), divided by N; and, as a
  cross-check other clients of a shared Redis cannot move, MEMORY USAGE summed over the de-dup
  keys (a 10 % sample, scaled; it leaves out the expires table's entry per key);
- Redis CPU per tick: INFO commandstats `evalsha` µs (a script's time includes its nested calls)
  over the ticks sent, in batches of `batch` (the batch mode's commit) and of 1 (per-tick mode,
  on min(N, 10,000) more ticks); the median of `repeats` runs, old and new alternating (the
  later runs of min(N, 100,000) ticks).
The new layout is measured at the fill the defaults give at their design rate (~64 entries per
hash: shards = N / 64), which is what the 2 GiB sizing rests on. `used_memory` is server-wide: on
a shared Redis, other clients' writes during the run show up in the figures; quote medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import tempfile
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from backend.bus.ingest import IngestScript, dramatiq_message_parts
from backend.bus.keys import Keys
from backend.core.dedup import DEFAULT_DEDUP_TTL, DEFAULT_GENERATIONS, TARGET_FILL
from backend.core.ticks import Tick, encode_content, encode_tick
from tests.bench.text import say

NOW_S = 1_795_000_000.0
PER_TICK_MAX = 10_000
CPU_REPEAT_COUNT = 100_000


def _ticks(count: int, start: int = 0) -> list[Tick]:
    base_us = int(NOW_S * 1_000_000)
    return [
        Tick(str(uuid.uuid4()), f"SYM{i % 50}", base_us - i, 100.0 + i % 7, 1.0, "bench", i, 0)
        for i in range(start, start + count)
    ]


async def _info(redis: Redis) -> tuple[int, int, int]:
    memory = await redis.info("memory")
    stats = await redis.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {"usec": 0, "calls": 0})
    return int(memory["used_memory"]), int(evalsha["usec"]), int(evalsha["calls"])


async def _drop(redis: Redis, pattern: str) -> None:
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=pattern, count=5_000):
        batch.append(key)
        if len(batch) >= 5_000:
            await redis.delete(*batch)
            batch.clear()
    if batch:
        await redis.delete(*batch)


async def _key_bytes(redis: Redis, keys: Keys, variant: str) -> float:
    """MEMORY USAGE summed over the variant's de-dup keys (sampled: every 10th key at most
    100,000 keys, scaled): a cross-check that other clients of a shared Redis cannot move."""
    pattern = keys.dedup_prefix + "*" if variant == "old" else keys.dedup_hashes("*") + "*"
    total = seen = sampled = 0
    async for key in redis.scan_iter(match=pattern, count=5_000):
        seen += 1
        if seen % 10 == 0 and sampled < 100_000:
            total += int(await redis.memory_usage(key, samples=0) or 0)
            sampled += 1
    return total / sampled * seen if sampled else 0.0


class _Legacy:
    """The pre-compact ingest script, called as the old `IngestScript` did."""

    def __init__(self, redis: Redis, keys: Keys, ttl: int) -> None:
        text = files("tests.bench").joinpath("dedup_legacy_ingest.lua").read_text("utf-8")
        self._script = redis.register_script(text)
        self._keys, self._ttl = keys, ttl

    async def __call__(self, ticks: list[Tick]) -> None:
        message_id = str(uuid.uuid4())
        head, tail = dramatiq_message_parts(self._keys.queue_name, message_id, int(NOW_S * 1000))
        args: list[Any] = [self._ttl, message_id, head, tail, self._keys.dedup_prefix, 0, 0]
        for t in ticks:
            args += (t.event_id, encode_content(t), encode_tick(t))
        keys = [self._keys.queue_list(), self._keys.queue_messages(), self._keys.outbox]
        await self._script(keys=[*keys, self._keys.stats], args=args)


async def _run(
    redis: Redis, keys: Keys, variant: str, count: int, batch: int, shards: int, generations: int
) -> dict[str, Any]:
    if variant == "old":
        call: Any = _Legacy(redis, keys, DEFAULT_DEDUP_TTL)
    else:
        call = IngestScript(
            redis, keys, DEFAULT_DEDUP_TTL, shards=shards, generations=generations,
            clock=lambda: NOW_S,
        )  # fmt: skip
    scratch = [keys.queue_list(), keys.queue_messages(), keys.outbox, keys.stats]
    await call(_ticks(1))  # loads the script; its one entry is noise over N
    await redis.delete(*scratch)
    memory_0, usec_0, calls_0 = await _info(redis)
    for n, start in enumerate(range(0, count, batch)):
        await call(_ticks(min(batch, count - start), start))
        if n % 20 == 19:
            await redis.delete(*scratch)
    _, usec_1, _ = await _info(redis)
    await redis.delete(*scratch)
    memory_1, _, _ = await _info(redis)
    key_bytes = await _key_bytes(redis, keys, variant)
    per_tick = min(count, PER_TICK_MAX)
    for i in range(per_tick):
        await call(_ticks(1, count + i))
        if i % 1_000 == 999:
            await redis.delete(*scratch)
    _, usec_2, calls_2 = await _info(redis)
    await redis.delete(*scratch)
    return {
        "bytes_per_event_id": round((memory_1 - memory_0) / count, 1),
        "memory_usage_per_event_id": round(key_bytes / count, 1),
        "batch": batch,
        "redis_us_per_tick_batch": round((usec_1 - usec_0) / count, 2),
        "redis_us_per_tick_single": round((usec_2 - usec_1) / per_tick, 2),
        # EVALSHA calls of other clients in the window (a shared Redis): their µs are in the
        # CPU figures above, which are then an upper bound
        "foreign_script_calls": calls_2 - calls_0 - math.ceil(count / batch) - per_tick,
    }


async def _measure(
    redis_url: str, count: int, batch: int, generations: int, repeats: int
) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    try:
        server = await redis.info("server")
        memory = await redis.info("memory")
        shards = max(1, math.ceil(count / TARGET_FILL))
        result: dict[str, Any] = {
            "redis_version": server["redis_version"],
            "allocator": memory.get("mem_allocator", "?"),
            "count": count,
            "new_shards": shards,
            "new_generations": generations,
        }
        cpu: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for repeat in range(repeats):  # old and new alternate: the box's noise hits both
            n = count if repeat == 0 else min(count, CPU_REPEAT_COUNT)
            for variant in ("old", "new"):
                keys = Keys(namespace=f"bench-dedup-{uuid.uuid4().hex[:8]}", queue_name="bench.q")
                try:
                    run = await _run(redis, keys, variant, n, batch, shards, generations)
                    if repeat == 0:
                        result[variant] = run
                        if variant == "new":
                            run["encodings"] = await _encodings(redis, keys)
                    cpu[variant].append(run)
                finally:
                    await _drop(redis, f"{keys.namespace}:*")
        for variant, runs in cpu.items():
            for key in ("redis_us_per_tick_batch", "redis_us_per_tick_single"):
                result[variant][key] = statistics.median(r[key] for r in runs)
        result["repeats"] = repeats
        return result
    finally:
        await redis.aclose()


async def _encodings(redis: Redis, keys: Keys) -> dict[str, int]:
    """Encodings of a sample of the new hashes (all listpack/ziplist is the point)."""
    seen: dict[str, int] = {}
    sampled = 0
    async for key in redis.scan_iter(match=f"{keys.namespace}:dd:*:*:*", count=1_000):
        encoding = (await redis.object("encoding", key)).decode()
        seen[encoding] = seen.get(encoding, 0) + 1
        sampled += 1
        if sampled >= 2_000:
            break
    return seen


def measure(
    redis_url: str,
    count: int,
    batch: int = 500,
    generations: int = DEFAULT_GENERATIONS,
    repeats: int = 3,
) -> dict[str, Any]:
    """Old vs new: bytes per remembered event_id (one run of `count`) and Redis µs per tick of
    the ingest script (median of `repeats` alternating runs)."""
    return asyncio.run(_measure(redis_url, count, batch, generations, repeats))


def _table(label: str, result: dict[str, Any]) -> str:
    old, new = result["old"], result["new"]
    rows = [
        f"{label}: Redis {result['redis_version']} ({result['allocator']}), "
        f"{result['count']:,} event_ids, new layout {result['new_shards']:,} shards x "
        f"{result['new_generations']} generations, CPU median of {result['repeats']} "
        f"(encodings sampled: {new.get('encodings')})",
        f"{'':34} {'old':>10} {'new':>10} {'new/old':>8}",
    ]
    for name, key in (
        ("bytes per event_id (used_memory)", "bytes_per_event_id"),
        ("bytes per event_id (MEMORY USAGE)", "memory_usage_per_event_id"),
        (f"Redis µs/tick, batches of {old['batch']}", "redis_us_per_tick_batch"),
        ("Redis µs/tick, one tick per call", "redis_us_per_tick_single"),
    ):
        ratio = new[key] / old[key] if old[key] else float("nan")
        rows.append(f"{name:34} {old[key]:>10} {new[key]:>10} {ratio:>7.2f}x")
    foreign = old["foreign_script_calls"] + new["foreign_script_calls"]
    if foreign:
        rows.append(f"(shared Redis: {foreign:,} other clients' EVALSHA calls in the first runs)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.dedup_memory")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--redis-url", default=None, help="default: REDIS_URL (settings)")
    parser.add_argument("--embedded", action="store_true", help="also an embedded Redis 6.2")
    parser.add_argument("--generations", type=int, default=DEFAULT_GENERATIONS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from backend.settings import BusSettings

    results: dict[str, Any] = {}
    url = args.redis_url or BusSettings().redis_url
    if url:
        results["external"] = measure(url, args.count, args.batch, args.generations, args.repeats)
        say(_table(url, results["external"]))
    if args.embedded or not url:
        from backend.embedded.redis_server import EmbeddedRedis
        from tests.support.servers import free_port

        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dedup-bench-")))
            server = EmbeddedRedis(tmp, free_port(), appendfsync="no")
            server.start()
            stack.callback(server.stop)
            results["embedded"] = measure(
                server.url, args.count, args.batch, args.generations, args.repeats
            )
            say(_table("embedded", results["embedded"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
