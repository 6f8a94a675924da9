"""A private Tickstream the chaos suite may break: its own Redis and PostgreSQL (the embedded
binaries, whatever REDIS_URL / PG_URL say, since a scenario kills them), the real API and Dramatiq
worker processes, each in its own process group so one signal reaches a worker and its children."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.settings import Settings
from tests.support.processes import Processes, make_settings, settings_env
from tests.support.servers import PrivateServers


@dataclass
class Cluster:
    redis: EmbeddedRedis
    pg: EmbeddedPostgres
    settings: Settings
    procs: Processes
    killed: set[str] = field(default_factory=set)  # processes a scenario stopped on purpose
    servers_down: set[str] = field(default_factory=set)
    incidents: list[str] = field(default_factory=list)  # what a scenario saw go wrong
    _next_worker: int = 1

    @property
    def api_url(self) -> str:
        return self.procs.api_url

    # --- processes -----------------------------------------------------------------------------
    def start_worker(self) -> str:
        """One Dramatiq worker process (plus Dramatiq's supervising parent), two threads."""
        name = f"worker-{self._next_worker}"
        self._next_worker += 1
        self.procs.start_worker(name, processes=1, threads=2)
        return name

    def workers(self) -> list[str]:
        """The workers that were started and not killed on purpose."""
        return [n for n in self.procs.procs if n.startswith("worker-") and n not in self.killed]

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to the whole process group of `name` (the worker and its children)."""
        os.killpg(self.procs.procs[name].pid, sig)

    def kill(self, name: str) -> None:
        """kill -9, the way a crashed host or an OOM killer does it."""
        self.killed.add(name)
        self.procs.kill(name, signal.SIGKILL)

    def terminate(self, name: str, timeout: float) -> tuple[float, int | None]:
        """SIGTERM to the main process, as a platform stops a service (Render, Docker and
        Kubernetes signal PID 1), and wait: (seconds until it exited, exit code or None if it
        hung). Dramatiq's parent passes one SIGTERM on to its worker children; a child that
        receives a second one (say the whole group was signalled) exits at once, by design."""
        self.killed.add(name)
        proc = self.procs.procs[name]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:  # it did not drain
            return time.monotonic() - started, None
        return time.monotonic() - started, code

    def restart_api(self) -> None:
        """kill -9 the API and start a new one on the same port."""
        self.procs.kill("api", signal.SIGKILL)
        self.procs.start_api()

    def worker_pids(self, name: str) -> list[int]:
        parent = psutil.Process(self.procs.procs[name].pid)
        return [parent.pid] + [c.pid for c in parent.children(recursive=True)]

    # --- servers -------------------------------------------------------------------------------
    def stop_postgres(self) -> None:
        self.servers_down.add("postgres")
        self.pg.stop()

    def start_postgres(self) -> None:
        self.pg.start()
        self.servers_down.discard("postgres")

    def kill_redis(self) -> None:
        self.servers_down.add("redis")
        self.redis.kill()

    def start_redis(self) -> None:
        self.redis.start(timeout=60)
        self.servers_down.discard("redis")

    # --- health --------------------------------------------------------------------------------
    def unexpected_deaths(self) -> list[str]:
        """Processes that exited although no scenario stopped them, with their log's last lines."""
        dead = list(self.incidents)
        for name, proc in self.procs.procs.items():
            if name not in self.killed and proc.poll() is not None:
                tail = self.procs.log(name).strip().splitlines()[-5:]
                dead.append(f"{name} (exit {proc.returncode}): " + " | ".join(tail))
        for server, alive in (("redis", self.redis.running), ("postgres", self.pg.running)):
            if server not in self.servers_down and not alive:
                dead.append(server)
        return dead


@contextlib.contextmanager
def cluster(
    root: Path,
    *,
    workers: int = 2,
    appendfsync: str = "everysec",
    heartbeat_timeout_ms: int = 5_000,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Servers, migrations, the API and `workers` worker processes; everything stopped on exit."""
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        servers = PrivateServers.start(stack, root, appendfsync=appendfsync)
        redis, pg = servers.redis, servers.postgres
        settings = make_settings(
            redis.url,
            pg.url,
            heartbeat_timeout_ms=heartbeat_timeout_ms,
            outbox_claim_idle_ms=3_000,
        )
        (root / "logs").mkdir(exist_ok=True)
        procs = Processes(env=settings_env(settings) | (extra_env or {}), log_dir=root / "logs")
        the_cluster = Cluster(redis=redis, pg=pg, settings=settings, procs=procs)
        try:
            procs.start_api()
            for _ in range(workers):
                the_cluster.start_worker()
            yield the_cluster
        finally:
            for name in the_cluster.procs.procs:  # a SIGSTOPped worker cannot take a SIGTERM
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    the_cluster.signal(name, signal.SIGCONT)
            procs.stop_all()
