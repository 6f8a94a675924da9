"""Once a second: RSS and CPU of every process, the backlog and the pipeline counters."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
from redis import Redis

from backend.bus.keys import Keys
from backend.bus.ledger import (
    CALC_TICKS,
    INGEST_ACCEPTED,
    OUTBOX_TICKS,
    ROWS_WRITTEN,
    read_gauges_sync,
)
from tests.bench.overload.ledger import Tally
from tests.bench.text import elapsed, say

STATS_TIMEOUT_S = 5.0  # GET /stats by the sampler; a slower answer is recorded as None


@dataclass
class Watched:
    """The processes to sample: their roots, found again every second (children come and go)."""

    api: int
    worker: int
    redis: int
    postgres: int
    bench: int = field(default_factory=os.getpid)


def _rss_cpu(proc: psutil.Process) -> tuple[int, float, int]:
    """(RSS, user+system CPU seconds, PSS) of one process; PSS from smaps_rollup."""
    with proc.oneshot():
        rss = proc.memory_info().rss
        cpu = proc.cpu_times()
    try:
        pss = getattr(proc.memory_full_info(), "pss", rss)
    except psutil.Error:
        pss = rss
    return rss, cpu.user + cpu.system, pss


class Sampler(threading.Thread):
    """Once a second: RSS and CPU of every process, the backlog and the pipeline counters."""

    def __init__(
        self,
        watched: Watched,
        redis_url: str,
        keys: Keys,
        tally: Tally,
        api_url: str,
        api_headers: dict[str, str],
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.watched = watched
        self.redis = Redis.from_url(redis_url)
        # GET /stats takes its sample when asked; a busy API may answer late: then None.
        self.api = httpx.Client(base_url=api_url, headers=api_headers, timeout=STATS_TIMEOUT_S)
        self.keys = keys
        self.tally = tally
        self.phase = "idle"
        self.samples: list[dict[str, Any]] = []
        self.worker_children: dict[int, str] = {}  # pid -> label, in order of first sight
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def _proc(self, pid: int) -> psutil.Process:
        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            proc = self._procs[pid] = psutil.Process(pid)
        return proc

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._proc(pid)
            return [root, *(self._proc(c.pid) for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def _read(self, procs: list[psutil.Process]) -> tuple[int, float, int, int]:
        """(RSS, CPU s, PSS, count) summed over `procs` (ones that vanished meanwhile skipped)."""
        rss = pss = count = 0
        cpu = 0.0
        for proc in procs:
            try:
                r, c, p = _rss_cpu(proc)
            except psutil.Error:
                continue
            rss, cpu, pss, count = rss + r, cpu + c, pss + p, count + 1
        return rss, cpu, pss, count

    def sample(self) -> dict[str, Any]:
        with self._lock:
            return self._sample()

    def _sample(self) -> dict[str, Any]:
        w = self.watched
        procs: dict[str, dict[str, float]] = {}

        def put(label: str, group: list[psutil.Process]) -> None:
            rss, cpu, pss, count = self._read(group)
            if count:
                procs[label] = {"rss": rss, "cpu_s": cpu, "pss": pss, "procs": count}

        put("api", self._tree(w.api))
        worker_tree = self._tree(w.worker)
        put("worker parent", worker_tree[:1])
        for child in worker_tree[1:]:
            label = self.worker_children.setdefault(
                child.pid, f"worker child {len(self.worker_children) + 1}"
            )
            put(label, [child])
        put("worker total", worker_tree)
        put("redis-server (+fork)", self._tree(w.redis))  # AOF rewrites fork a child
        put("postgres (sum)", self._tree(w.postgres))
        put("bench (this)", self._tree(w.bench)[:1])
        backlog_ticks = self._stats_backlog()
        gauges = read_gauges_sync(  # one consistent snapshot, the ledger's own read
            self.redis, self.keys, heartbeat_timeout_ms=10_000, now_ms=time.time() * 1000
        )
        queue, outbox = gauges.queue_depth, gauges.outbox_entries
        accepted, calc, written, outbox_ticks = (
            int(gauges.counters.get(name, 0))
            for name in (INGEST_ACCEPTED, CALC_TICKS, ROWS_WRITTEN, OUTBOX_TICKS)
        )
        used = int(self.redis.info("memory")["used_memory"])
        keys = int(self.redis.dbsize())
        t = self.tally
        sample = {
            "t": round(elapsed(), 3),
            "phase": self.phase,
            "backlog_ticks": backlog_ticks,  # GET /stats gauges.backlog_ticks; None: no answer
            "backlog_ticks_redis": gauges.backlog_ticks,
            "outbox_ticks": outbox_ticks,
            "queue": queue,
            "outbox": outbox,
            "handoffs": queue + outbox,
            "ingest_accepted": accepted,
            "calc_ticks": calc,
            "rows_written": written,
            "calc_lag": accepted - calc,
            "persist_lag": accepted - written,
            "redis_used_memory": used,
            "redis_keys": keys,
            "offered": t.offered,
            "acked": t.acked,
            "http_429": t.http_429,
            "procs": procs,
        }
        self.samples.append(sample)
        return sample

    def _stats_backlog(self) -> int | None:
        """`gauges.backlog_ticks` of GET /stats, or None when the API did not answer in time."""
        try:
            r = self.api.get("/stats")
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        return int(r.json()["gauges"]["backlog_ticks"])

    def run(self) -> None:
        while not self._halt.wait(1.0):
            try:
                self.sample()
            except Exception as exc:  # a sample lost is not worth stopping the run for
                say(f"sampler: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.redis.close()
        self.api.close()
