"""The two systems under test on one pair of private servers, and what watches their views.

- ours: the real API (uvicorn, `api_procs` processes) and Dramatiq workers, with embedded
  Redis; PostgreSQL shared with the baseline;
- baseline: tests/bench/baseline/app.py, one uvicorn process that per tick validates,
  computes the view in-process and INSERTs + COMMITs before answering.
Both run for the whole benchmark; only the one being measured gets load.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from redis import Redis

from backend.bus.keys import Keys
from backend.settings import Settings
from tests.bench.pipeline.procs import Group
from tests.support.processes import (
    ROOT,
    Processes,
    answers_ok,
    settings_env,
    uvicorn_command,
    worker_command,
)
from tests.support.servers import PrivateServers
from tests.support.waiting import wait_for

BASELINE_APP = ROOT / "tests" / "bench" / "baseline" / "app.py"


@dataclass
class System(Processes):
    """A set of subprocesses (each its own process group) answering on `url`; logs are
    `<name>-<process>.log`."""

    name: str = "system"
    groups: list[Group] = field(default_factory=list)  # what CPU/RSS is counted over
    has_gateway: bool = False

    @property
    def url(self) -> str:
        return self.api_url

    @property
    def stream_url(self) -> str:
        """Where its live views are streamed: ours from the realtime gateway, the baseline from
        its one process."""
        return self.gateway_url if self.has_gateway else self.api_url

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{self.name}-{name}.log"

    def uvicorn(self, app: str, workers: int) -> subprocess.Popen[bytes]:
        options = ["--timeout-graceful-shutdown", "3", "--no-access-log"]
        if workers > 1:
            options += ["--workers", str(workers)]
        return self.spawn("api", uvicorn_command(app, self.api_port, *options))

    def wait_up(self) -> None:
        wait_for(
            lambda: answers_ok(self.url + "/health/liveness"), 60, what=f"{self.name} liveness"
        )

    def stop(self) -> None:
        self.stop_all()


def start_ours(
    servers: PrivateServers,
    settings: Settings,
    log_dir: Path,
    api_procs: int,
    processes: int,
    threads: int,
) -> System:
    """The real system: API, workers and the realtime gateway (the views' stream); waits for
    the workers' heartbeats."""
    env = settings_env(settings) | {"LOG_LEVEL": "WARNING"}
    ours = System(env, log_dir, name="ours", has_gateway=True)
    ours.env["GATEWAY_PUBLIC_URL"] = ours.gateway_url  # the API's /stream redirects there
    api = ours.uvicorn("backend.api.app:create_app", api_procs)
    worker = ours.spawn("worker", worker_command(processes, threads))
    gateway = ours.start_gateway()
    ours.wait_up()
    keys = Keys.from_settings(settings)
    with Redis.from_url(servers.redis.url) as redis:
        wait_for(lambda: redis.zcard(keys.heartbeats) >= processes, 60, what="worker heartbeats")
    assert servers.redis.pid is not None and servers.postgres.pid is not None
    ours.groups = [
        Group("api", api.pid, split=api_procs > 1),
        Group("worker", worker.pid, split=True),
        Group("gateway", gateway.pid),
        Group("redis-server", servers.redis.pid),
        Group("postgres", servers.postgres.pid, summed=True),
    ]
    return ours


def start_baseline(servers: PrivateServers, settings: Settings, log_dir: Path) -> System:
    """The naive pipeline: one uvicorn process on the same PostgreSQL."""
    env = settings_env(settings) | {"LOG_LEVEL": "WARNING"}
    base = System(env, log_dir, name="baseline")
    api = base.uvicorn("tests.bench.baseline.app:create_app", 1)
    base.wait_up()
    assert servers.postgres.pid is not None
    base.groups = [
        Group("api", api.pid),
        Group("postgres", servers.postgres.pid, summed=True),
    ]
    return base


class ViewWatcher(threading.Thread):
    """Follows GET /stream and records, per change, the ticks the views have taken in.

    `ticks_total` of a symbol's view counts every tick it has taken in; a run's in-view count is
    the sum over symbols of the increase since `mark()`. Times are this process's monotonic.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(name="view-watcher", daemon=True)
        self.url = url
        self.headers = headers
        self.latest: dict[str, int] = {}
        self.base: dict[str, int] = {}
        self.history: list[tuple[float, int]] = []  # (t, ticks in views since mark())
        self.events = 0
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.halt = threading.Event()
        self.error: str | None = None

    def mark(self) -> None:
        with self.lock:
            self.base = dict(self.latest)
            self.history = []
            self.events = 0

    def taken(self) -> int:
        with self.lock:
            return sum(v - self.base.get(s, 0) for s, v in self.latest.items())

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                with (
                    httpx.Client(base_url=self.url, timeout=None, headers=self.headers) as c,
                    c.stream("GET", "/stream", params={"types": "symbol.updated"}) as response,
                ):
                    self.ready.set()
                    for line in response.iter_lines():
                        if self.halt.is_set():
                            return
                        if line.startswith("data: ") and '"symbol.updated"' in line:
                            self._event(orjson.loads(line[6:]))
            except (httpx.HTTPError, orjson.JSONDecodeError, KeyError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5)

    def _event(self, event: dict[str, object]) -> None:
        view = event["view"]
        assert isinstance(view, dict)
        symbol, total = str(event["symbol"]), int(view["ticks_total"])
        now = time.monotonic()
        with self.lock:
            self.events += 1
            if total <= self.latest.get(symbol, -1):
                return
            self.latest[symbol] = total
            taken = sum(v - self.base.get(s, 0) for s, v in self.latest.items())
            self.history.append((now, taken))

    def stop(self) -> None:
        self.halt.set()  # the stream ends when the server goes; a daemon thread otherwise


def in_views(history: list[tuple[float, int]], accepted: int, first_send: float) -> dict[str, Any]:
    """Ticks the views took in, and the rate: accepted / (all of them in views - first send).

    When the views never had them all, the rate is what they had at their last change."""
    if not history:
        return {"ticks": 0, "span_s": None, "tps": None, "complete": accepted == 0}
    done = next((t for t, n in history if n >= accepted), None)
    t_end, taken = (done, accepted) if done is not None else history[-1]
    span = t_end - first_send
    return {
        "ticks": history[-1][1],
        "span_s": round(span, 3),
        "tps": taken / span if span > 0 else None,
        "complete": done is not None,
    }


def wait_views(
    watcher: ViewWatcher, accepted: int, timeout: float = 60.0, idle: float = 5.0
) -> None:
    """Until the views have taken in `accepted` ticks, or nothing moved for `idle` s."""
    deadline = time.monotonic() + timeout
    last, since = watcher.taken(), time.monotonic()
    while (taken := watcher.taken()) < accepted and time.monotonic() < deadline:
        if taken != last:
            last, since = taken, time.monotonic()
        elif time.monotonic() - since > idle:
            return
        time.sleep(0.1)
