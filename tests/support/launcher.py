"""The real `python -m backend.launcher` (what `make run` runs) as a test's subprocess.

It runs in a session of its own, so a test can signal it as a terminal would; its children run in
sessions of their own too (the supervisor's), so cleanup walks the process tree rather than a
process group: nothing the launcher started outlives the test, even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from backend.settings import Settings
from tests.support.processes import settings_env
from tests.support.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

# Procfile name -> what its command line contains (the supervisor `exec`s each command).
SIGNATURES = {
    "api": "-m backend.api",
    "gateway": "-m backend.gateway",
    "worker": "-m tasks worker",
    "alerts": "-m tasks alerts",
    "history": "-m tasks history",
    "feeder": "-m feeder",
    "ui": "-m ui",
}


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    api_url: str
    ui_url: str
    gateway_url: str
    history_url: str  # the history service's ops port (/health/*, /metrics)
    log_path: Path
    record_path: Path

    def children(self) -> dict[str, psutil.Process]:
        """The launcher's live Procfile processes by name (a name is missing while it is down)."""
        found: dict[str, psutil.Process] = {}
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    if child.status() == psutil.STATUS_ZOMBIE:
                        continue
                    cmdline = " ".join(child.cmdline())
                    for name, signature in SIGNATURES.items():
                        if signature in cmdline:
                            found[name] = child
        return found

    def identities(self) -> dict[str, tuple[int, float]]:
        """name -> (pid, start time): unchanged means the process was never restarted."""
        return {name: (p.pid, p.create_time()) for name, p in self.children().items()}

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def launcher_env(
    settings: Settings, tmp: Path, **extra: str
) -> tuple[dict[str, str], int, int, int]:
    """The launcher's environment: the test's servers and namespace, free ports for everything
    that listens (the API, the gateway, the UI, the workers' and the feeder's metrics servers).
    Returns it with the API's, the UI's and the gateway's ports."""
    api_port, ui_port, gateway_port = free_port(), free_port(), free_port()
    env = settings_env(settings) | {
        "PORT": str(api_port),
        "UI_PORT": str(ui_port),
        "GATEWAY_PORT": str(gateway_port),
        "WORKER_METRICS_PORT": str(free_port()),
        "ALERTS_METRICS_PORT": str(free_port()),
        "HISTORY_METRICS_PORT": str(free_port()),
        "FEEDER_METRICS_PORT": str(free_port()),
        "VAR_DIR": str(tmp / "var"),
        "FEEDER_RECORD_PATH": str(tmp / "feeder.jsonl"),
        **extra,
    }
    # The launcher points these at its own API and gateway.
    for name in ("TARGET_URL", "BACKEND_URL", "GATEWAY_URL", "GATEWAY_PUBLIC_URL"):
        env.pop(name, None)
    return env, api_port, ui_port, gateway_port


@contextlib.contextmanager
def launched(settings: Settings, tmp: Path, **extra: str) -> Iterator[Launched]:
    env, api_port, ui_port, gateway_port = launcher_env(settings, tmp, **extra)
    log_path = tmp / "launcher.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.launcher"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = Launched(
        proc=proc,
        api_url=f"http://127.0.0.1:{api_port}",
        ui_url=f"http://127.0.0.1:{ui_port}",
        gateway_url=f"http://127.0.0.1:{gateway_port}",
        history_url=f"http://127.0.0.1:{env['HISTORY_METRICS_PORT']}",
        log_path=log_path,
        record_path=Path(env["FEEDER_RECORD_PATH"]),
    )
    try:
        yield run
    finally:
        stop(run)


def stop(run: Launched, timeout: float = 40) -> int | None:
    """SIGTERM the launcher and wait; SIGKILL it and everything it started if it hangs."""
    tree = run.descendants()
    if run.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.proc.wait(timeout)
    if run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait()
    for leftover in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    return run.proc.returncode


def log_lines(run: Launched) -> list[dict[str, Any]]:
    """The launcher's own JSON lines (service "launcher")."""
    import orjson

    lines = []
    for raw in run.log_path.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            line = orjson.loads(raw)
            if isinstance(line, dict) and line.get("service") == "launcher":
                lines.append(line)
    return lines
