"""The six failures, one per scenario. Each runs while the clients send; it returns notes (what it
did, and what it measured on the way) and raises nothing: the verdict comes from `verify`.

Durations come in two sizes: `full` for `make chaos`, `short` for the run inside `make test`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.chaos.cluster import Cluster
from tests.support.load import Load
from tests.support.verify import stored_rows

DRAIN_TIMEOUT_S = 60.0  # a worker that takes longer than this to stop on SIGTERM did not drain


@dataclass
class Scale:
    warmup_s: float
    kills: int
    kill_every_s: float
    pg_down_s: float
    api_restarts: int
    redis_kills: int
    redis_down_s: float
    stop_extra_s: float  # SIGSTOP lasts heartbeat timeout + this
    tail_s: float  # load after the last fault, before the clients stop


FULL = Scale(5, 6, 5, 30, 3, 2, 3, 10, 10)
SHORT = Scale(2, 5, 2, 8, 2, 1, 2, 4, 3)


@dataclass
class Gauges:
    """Samples /stats in the background: the backlog a fault built up, at its peak."""

    api_url: str
    peak_outbox: int = 0
    peak_queue: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Gauges:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=2) as client:
            while not self.stop.wait(0.5):
                try:
                    gauges = client.get("/stats").json()["gauges"]
                except (httpx.HTTPError, ValueError, KeyError):
                    continue
                self.peak_outbox = max(self.peak_outbox, int(gauges.get("outbox_entries") or 0))
                self.peak_queue = max(self.peak_queue, int(gauges.get("queue_depth") or 0))


def _rows(cluster: Cluster) -> int:
    try:
        return stored_rows(cluster.settings.pg_url)[1]
    except Exception:
        return -1


def kill_workers(cluster: Cluster, load: Load, scale: Scale) -> list[str]:
    """kill -9 a worker (its whole process group) every few seconds while rows are being
    written; a replacement starts at once, as a platform restarts a crashed service."""
    time.sleep(scale.warmup_s)
    killed = []
    for i in range(scale.kills):
        before = _rows(cluster)
        victim = cluster.workers()[0]
        cluster.kill(victim)
        killed.append(victim)
        cluster.start_worker()
        time.sleep(scale.kill_every_s)
        if _rows(cluster) <= before and i == scale.kills - 1:
            return [f"rows did not grow after kill {i + 1}"]
    time.sleep(scale.tail_s)
    return [f"kill -9 ×{len(killed)}, one every {scale.kill_every_s:g} s ({', '.join(killed)})"]


def postgres_down(cluster: Cluster, load: Load, scale: Scale) -> list[str]:
    """PostgreSQL stopped (fast shutdown) while ticks keep coming, then started again."""
    time.sleep(scale.warmup_s)
    with Gauges(cluster.api_url) as gauges:
        acked_before = load.acked_count()
        cluster.stop_postgres()
        time.sleep(scale.pg_down_s)
        acked_during = load.acked_count() - acked_before
        cluster.start_postgres()
        backlog = load.acked_count()
        returned = time.monotonic()
        caught_up = None
        while time.monotonic() - returned < scale.tail_s or caught_up is None:
            if caught_up is None and _rows(cluster) >= backlog:
                caught_up = time.monotonic() - returned
            if time.monotonic() - returned > 120:
                break
            time.sleep(0.2)
    caught_up_text = "never" if caught_up is None else f"{caught_up:.1f} s"
    return [
        f"PostgreSQL down {scale.pg_down_s:g} s; {acked_during} ticks acknowledged meanwhile;"
        f" outbox peaked at {gauges.peak_outbox} entries; Postgres held every tick acknowledged"
        f" before its return {caught_up_text} after it came back"
    ]


def api_restart(cluster: Cluster, load: Load, scale: Scale) -> list[str]:
    """kill -9 the API mid-stream and start it again; clients retry with the same event_ids."""
    time.sleep(scale.warmup_s)
    downtimes = []
    for _ in range(scale.api_restarts):
        started = time.monotonic()
        cluster.restart_api()
        downtimes.append(time.monotonic() - started)
        time.sleep(scale.warmup_s)
    time.sleep(scale.tail_s)
    answers = load.tally.answers
    failed = sum(n for k, n in answers.items() if not k.isdigit())
    return [
        f"API kill -9 + restart ×{scale.api_restarts} (down {max(downtimes):.1f} s at most);"
        f" {failed} requests failed in transit and were retried"
    ]


def sigterm_workers(cluster: Cluster, load: Load, scale: Scale) -> list[str]:
    """A deploy: new workers start, the old ones get SIGTERM and must stop by themselves,
    finishing or handing back what they hold (nothing may need a kill -9)."""
    time.sleep(scale.warmup_s)
    notes = []
    for old in cluster.workers():
        cluster.start_worker()
        took, code = cluster.terminate(old, DRAIN_TIMEOUT_S)
        if code is None:
            cluster.procs.kill(old, signal.SIGKILL)
            cluster.incidents.append(f"{old} did not stop within {DRAIN_TIMEOUT_S:g} s of SIGTERM")
            continue
        if code != 0:
            cluster.incidents.append(f"{old} exited {code} after SIGTERM instead of draining")
        notes.append(f"{old} stopped {took:.1f} s after SIGTERM (exit {code})")
        time.sleep(scale.warmup_s)
    time.sleep(scale.tail_s)
    return notes


def redis_kill(cluster: Cluster, load: Load, scale: Scale) -> list[str]:
    """kill -9 Redis (the AOF is all that survives) and start it again on the same files."""
    time.sleep(scale.warmup_s)
    notes = []
    for _ in range(scale.redis_kills):
        acked_before = load.acked_count()
        cluster.kill_redis()
        time.sleep(scale.redis_down_s)
        started = time.monotonic()
        cluster.start_redis()
        notes.append(
            f"Redis kill -9 at {acked_before} acked, down {scale.redis_down_s:g} s,"
            f" AOF replayed in {time.monotonic() - started:.1f} s"
        )
        time.sleep(scale.warmup_s)
    time.sleep(scale.tail_s)
    return [*notes, f"appendfsync {cluster.redis.appendfsync}"]


def sigstop_worker(cluster: Cluster, load: Load, scale: Scale) -> list[str]:
    """SIGSTOP a worker past the heartbeat timeout (its messages go to the others), then
    SIGCONT: the late worker must not apply or store anything a second time."""
    time.sleep(scale.warmup_s)
    victim = cluster.workers()[0]
    paused_s = cluster.settings.heartbeat_timeout_ms / 1000 + scale.stop_extra_s
    cluster.signal(victim, signal.SIGSTOP)
    time.sleep(paused_s)
    cluster.signal(victim, signal.SIGCONT)
    time.sleep(scale.tail_s)
    return [
        f"{victim} stopped {paused_s:g} s (heartbeat timeout"
        f" {cluster.settings.heartbeat_timeout_ms / 1000:g} s), then resumed"
    ]


Inject = Callable[[Cluster, Load, Scale], list[str]]

SCENARIOS: dict[str, Inject] = {
    "kill -9 workers": kill_workers,
    "postgres down": postgres_down,
    "api restart": api_restart,
    "sigterm workers": sigterm_workers,
    "redis kill + AOF": redis_kill,
    "sigstop worker": sigstop_worker,
}
