"""Real processes for tests, chaos and benchmarks: the API (uvicorn), Dramatiq workers, the
feeder and the UI as subprocesses, each in its own process group so one signal reaches a process
and its children, each logging to a file of its own.

Every test gets its own Redis namespace (`make_settings`), so runs never see each other's data;
`settings_env` is the environment those processes read it from.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from backend.settings import Settings, child_environment
from tests.support.servers import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
AUTH = ("ingest", "ingest-dev-password")


def basic_auth_header(user: str = AUTH[0], password: str = AUTH[1]) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def worker_command(processes: int, threads: int) -> list[str]:
    """The Procfile's worker, with this interpreter."""
    return [
        sys.executable, "-m", "tasks", "worker",
        "--processes", str(processes), "--threads", str(threads),
    ]  # fmt: skip


def delivery_worker_command(threads: int) -> list[str]:
    """The Procfile's `alerts` process (webhook delivery), with this interpreter."""
    return [
        sys.executable, "-m", "tasks", "alerts",
        "--processes", "1", "--threads", str(threads),
    ]  # fmt: skip


def uvicorn_command(app: str, port: int, *options: str) -> list[str]:
    """`uvicorn <app> --factory` on 127.0.0.1:`port`, with this interpreter."""
    return [
        sys.executable, "-m", "uvicorn", app, "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *options,
    ]  # fmt: skip


def answers_ok(url: str) -> bool:
    """Whether GET `url` answers 200 within a second (a liveness or health probe)."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Processes:
    """API and worker subprocesses sharing one environment."""

    env: dict[str, str]
    log_dir: Path
    api_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def spawn(
        self, name: str, args: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Any command as the process `name`, in its own process group, logging to `<name>.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we can kill -9 it with its children
        )
        self.procs[name] = proc
        return proc

    def start_api(self, extra_env: dict[str, str] | None = None) -> None:
        """The API; its /stream redirects to this harness's gateway (`start_gateway`)."""
        env = {"GATEWAY_PUBLIC_URL": self.gateway_url, **(extra_env or {})}
        self.spawn("api", uvicorn_command("backend.api.app:create_app", self.api_port), env)
        wait_for(lambda: answers_ok(self.api_url + "/health/liveness"), 30, what="API liveness")

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start_gateway(
        self,
        name: str = "gateway",
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """`python -m backend.gateway` as the Procfile runs it, on `port` (default
        `gateway_port`; another port for a second replica); returns once it is ready."""
        port = port or self.gateway_port
        proc = self.spawn(
            name,
            [sys.executable, "-m", "backend.gateway", "--host", "127.0.0.1", "--port", str(port)],
            extra_env,
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers_ok(url + "/health/readiness"), 30, what=f"{name} ready")
        return proc

    def start_worker(
        self, name: str = "worker", processes: int = 1, threads: int = 2
    ) -> subprocess.Popen[bytes]:
        return self.spawn(name, worker_command(processes, threads))

    def start_delivery_worker(
        self, name: str = "alerts", threads: int = 8, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """The webhook delivery worker (`tasks.delivery_worker`), env overrides e.g. ALERT_*."""
        return self.spawn(name, delivery_worker_command(threads), extra_env)

    def start_history(
        self, name: str = "history", threads: int = 2, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """The `history` service (replays), as the Procfile runs it."""
        command = [sys.executable, "-m", "tasks", "history", "--processes", "1"]
        return self.spawn(name, [*command, "--threads", str(threads)], extra_env)

    def start_feeder(self, name: str = "feeder", **env: str) -> subprocess.Popen[bytes]:
        """`python -m feeder` posting to this harness's API (env overrides SYMBOLS, TPS, ...)."""
        base = {"TARGET_URL": self.api_url, "SEED": "7", "STATUS_INTERVAL": "0.5"}
        return self.spawn(name, [sys.executable, "-m", "feeder"], base | env)

    def start_ui(self, port: int, extra_env: dict[str, str] | None = None) -> str:
        """The Streamlit app as `make run` starts it, pointed at this API (REST) and this
        gateway (live: `start_gateway` first); returns its URL.

        The UI gets no Redis and no database at all: nothing that names one is in its
        environment, so a page that reached for either would fail here, not in production.
        """
        denied = ("REDIS_URL", "PG_URL", "DATABASE_URL", "EMBEDDED_REDIS_PORT")
        env = {
            name: value
            for name, value in self.env.items()
            if name.upper() not in denied and not name.upper().startswith(("REDIS_", "PG_"))
        }
        env |= {"BACKEND_URL": self.api_url, "GATEWAY_URL": self.gateway_url, **(extra_env or {})}
        # `spawn` starts from `self.env`; a copy of this harness with the UI's environment
        # spawns it instead (same log dir, and the same `procs`, so kill/stop_all reach it).
        ui_harness = dataclasses.replace(self, env=env)
        ui_harness.spawn(
            "ui",
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "ui/app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers_ok(url + "/_stcore/health"), 60, what="Streamlit health")
        return url

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(30)

    def stop_all(self) -> None:
        """SIGTERM every live process group at once, then wait; kill -9 what did not stop."""
        live = {name: proc for name, proc in self.procs.items() if proc.poll() is None}
        for proc in live.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in live.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(name)
        self.procs.clear()

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""


def make_settings(redis_url: str, pg_url: str, **overrides: Any) -> Settings:
    """Settings for one test: its own Redis namespace and realtime ring (no other test's events
    reach it), fast flushes and redelivery."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "pg_url": pg_url,
        "redis_namespace": namespace,
        "realtime_stream": f"{namespace}:realtime",
        "flush_interval": 0.2,
        "heartbeat_timeout_ms": 5_000,
        "outbox_claim_idle_ms": 3_000,
        # Many systems run side by side in the suite: no ops ports unless a test asks for them.
        "worker_metrics_port": 0,
        "alerts_metrics_port": 0,
        "history_metrics_port": 0,
        "feeder_metrics_port": 0,
    }
    values.update(overrides)
    return Settings().model_copy(update=values)


def product_settings(redis_url: str, pg_url: str, **overrides: Any) -> Settings:
    """The product's defaults (not the tests' fast flushes), in a namespace of their own: what
    a benchmark measures."""
    d = Settings()
    defaults = {
        "flush_interval": d.flush_interval,
        "heartbeat_timeout_ms": d.heartbeat_timeout_ms,
        "outbox_claim_idle_ms": d.outbox_claim_idle_ms,
    }
    return make_settings(redis_url, pg_url, **(defaults | overrides))


def settings_env(settings: Settings) -> dict[str, str]:
    overrides = {"INGEST_USERNAME": AUTH[0], "INGEST_PASSWORD": AUTH[1], "LOG_LEVEL": "INFO"}
    return child_environment(settings, overrides | {"PYTHONUNBUFFERED": "1"})


@contextlib.contextmanager
def running(env: dict[str, str], log_dir: Path) -> Iterator[Processes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(env=env, log_dir=log_dir)
    try:
        yield procs
    finally:
        procs.stop_all()
