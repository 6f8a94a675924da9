"""Once a second during a replay: its progress (GET /replays/{id}), the `history` service's RSS
(every process of its tree: the Dramatiq parent and its worker child) and the CPU of history,
redis-server and PostgreSQL.

CPU attribution on shared servers: redis-server is the whole server (its pid from INFO server),
so it counts anyone else using it; PostgreSQL is counted twice, as the backends serving this
benchmark's database (pg_stat_activity by datname; a backend's CPU counted from when it was first
seen to its last sample, so a lower bound) and as the whole server tree (an upper bound: other
databases' work is in it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import psycopg

from tests.bench.pipeline.procs import tree_cpu

MB = 1024 * 1024


def tree_rss(pid: int) -> tuple[int, int]:
    """RSS of `pid` and of its descendants (bytes): (parent, children)."""
    try:
        root = psutil.Process(pid)
        parent = root.memory_info().rss
        kids = root.children(recursive=True)
    except psutil.Error:
        return 0, 0
    children = 0
    for kid in kids:
        try:
            children += kid.memory_info().rss
        except psutil.Error:
            continue
    return parent, children


def _cpu(pid: int) -> float | None:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system


class BackendCpu:
    """CPU of the PostgreSQL backends serving one database, summed over every backend seen."""

    def __init__(self, admin_url: str, database: str) -> None:
        self._conn = psycopg.connect(admin_url, autocommit=True)
        self._database = database
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}

    def sample(self) -> None:
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self._database,),
        ).fetchall()
        for (pid,) in rows:
            cpu = _cpu(int(pid))
            if cpu is None:
                continue
            self._first.setdefault(pid, cpu)
            self._last[pid] = cpu

    def total(self) -> float:
        return sum(self._last[p] - self._first[p] for p in self._last)

    def close(self) -> None:
        self._conn.close()


@dataclass
class CpuCounters:
    """Where each counted group's CPU stood at one moment (s)."""

    history: float
    redis: float | None
    postgres_db: float
    postgres_all: float


@dataclass
class Sampled:
    t: float  # monotonic
    state: str
    ticks_applied: int
    ticks_total: int
    rate: float
    rss_parent: int
    rss_children: int
    cpu: CpuCounters


@dataclass(eq=False)  # a thread: hashable by identity
class ReplaySampler(threading.Thread):
    """Samples one replay (and the processes around it) every `interval` s until stopped."""

    client: httpx.Client
    replay_id: str
    history_pid: int
    redis_pid: int | None
    postmaster_pid: int | None
    backends: BackendCpu
    interval: float = 1.0
    samples: list[Sampled] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        super().__init__(name="replay-sampler", daemon=True)
        self._halt = threading.Event()

    def counters(self) -> CpuCounters:
        self.backends.sample()
        return CpuCounters(
            history=tree_cpu(self.history_pid),
            redis=_cpu(self.redis_pid) if self.redis_pid else None,
            postgres_db=self.backends.total(),
            postgres_all=tree_cpu(self.postmaster_pid) if self.postmaster_pid else 0.0,
        )

    def sample(self) -> Sampled | None:
        try:
            status = self.client.get(f"/replays/{self.replay_id}").json()
        except (httpx.HTTPError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return None
        parent, children = tree_rss(self.history_pid)
        s = Sampled(
            t=time.monotonic(),
            state=str(status["state"]),
            ticks_applied=int(status["ticks_applied"]),
            ticks_total=int(status["ticks_total"]),
            rate=float(status["rate"]),
            rss_parent=parent,
            rss_children=children,
            cpu=self.counters(),
        )
        self.samples.append(s)
        return s

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._halt.is_set():
            s = self.sample()
            if s is not None and s.state in ("done", "cancelled", "failed"):
                return
            next_at += self.interval
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> list[Sampled]:
        self._halt.set()
        self.join(10)
        return self.samples


def sample_json(s: Sampled, t0: float) -> dict[str, Any]:
    return {
        "t_s": round(s.t - t0, 2),
        "state": s.state,
        "ticks_applied": s.ticks_applied,
        "rate": s.rate,
        "rss_parent_mb": round(s.rss_parent / MB, 1),
        "rss_children_mb": round(s.rss_children / MB, 1),
        "cpu_s": vars(s.cpu),
    }
