"""`python -m backend.launcher` (what `make run` calls): the whole system in one terminal.

Starts embedded Redis/PostgreSQL unless REDIS_URL / PG_URL point elsewhere, runs the migrations,
then runs every Procfile process under our `Supervisor` (honcho only parses the Procfile) with the
right URLs and ports. A process that dies is restarted after a backoff, like a platform would, and
the others and the servers stay up; each restart is counted in Redis for /stats and /metrics.
Ctrl-C stops the processes first and the servers last, so workers can still flush on the way down.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

from backend.embedded import (
    EmbeddedServerError,
    EmbeddedServers,
    check_reachable,
    redact_url,
    start_embedded,
)
from backend.logs import configure_logging
from backend.settings import LauncherSettings, child_environment, get_settings
from backend.settings.production import InsecureSettings, enforce_deploy_policy
from backend.supervision.reporting import RestartReporter
from backend.supervision.supervisor import Supervisor

REPO_ROOT = Path(__file__).resolve().parent.parent
PROCFILE = REPO_ROOT / "Procfile"
# Stragglers are SIGKILLed after this many seconds; less (honcho's 5) can cut a worker's final
# flush short, and Redis redelivery then makes the shutdown look like a crash.
SHUTDOWN_GRACE_SECONDS = 15


def _fail(message: str) -> int:
    """One line on stderr and exit status 1: startup problems are the user's to fix, not bugs."""
    print(f"tickstream: {message}", file=sys.stderr)
    return 1


def _port_in_use(port: int) -> bool:
    """True if something listens on `port` (we bind 0.0.0.0, as uvicorn and streamlit will)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def check_ports(settings: LauncherSettings) -> str | None:
    """A one-line complaint if the API, gateway or UI port can't be used, else None."""
    listeners = (
        (settings.port, "API", "PORT"),
        (settings.gateway_port, "gateway", "GATEWAY_PORT"),
        (settings.ui_port, "UI", "UI_PORT"),
    )
    seen: dict[int, str] = {}
    for port, _, var in listeners:
        if port in seen:
            return f"{seen[port]} and {var} are both {port}: give each process its own port"
        seen[port] = var
    for port, what, var in listeners:
        if _port_in_use(port):
            return f"port {port} for the {what} is busy: stop whatever listens there or set {var}"
    return None


def load_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process name -> shell command, in Procfile order."""
    from honcho.environ import parse_procfile

    return dict(parse_procfile(path.read_text()).processes)


def process_env(name: str, settings: LauncherSettings, servers: EmbeddedServers) -> dict[str, str]:
    """The environment for one Procfile process: ours, plus `settings` (`to_env`), the server
    URLs, its PORT and the venv. Each child then builds only its own settings class from it."""
    overrides = servers.env()
    overrides["PYTHONUNBUFFERED"] = "1"  # log lines reach the terminal as they happen
    # Point the feeder and the UI at the API we run, and the UI and the API's /stream redirect
    # at the gateway we run, unless they were configured explicitly.
    api_url = f"http://127.0.0.1:{settings.port}"
    gateway_url = f"http://127.0.0.1:{settings.gateway_port}"
    configured = settings.model_fields_set
    for field, variable, url in (
        ("target_url", "TARGET_URL", api_url),
        ("backend_url", "BACKEND_URL", api_url),
        ("gateway_url", "GATEWAY_URL", gateway_url),
        ("gateway_public_url", "GATEWAY_PUBLIC_URL", gateway_url),
    ):
        if field not in configured:
            overrides[variable] = url
    env = child_environment(settings, overrides)
    # `.venv/bin/python -m backend.launcher` works without activating the venv, so put its bin
    # first: `uvicorn`, `dramatiq`, `streamlit` and `python` must be the venv's.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(filter(None, [venv_bin, env.get("PATH")]))
    env.pop("PORT", None)
    if name == "api":
        env["PORT"] = str(settings.port)
    elif name == "gateway":
        env["PORT"] = str(settings.gateway_port)
    elif name == "ui":
        env["PORT"] = str(settings.ui_port)
        env.setdefault("STREAMLIT_SERVER_HEADLESS", "true")  # no e-mail prompt, no browser
        env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def _banner(settings: LauncherSettings, servers: EmbeddedServers, names: list[str]) -> str:
    def where(embedded: bool, url: str, sub: str) -> str:
        suffix = f"  (embedded, data in {Path(settings.var_dir) / sub})" if embedded else ""
        return redact_url(url) + suffix

    return "\n".join(
        [
            "",
            "Tickstream is starting: " + ", ".join(names),
            f"  API docs  http://127.0.0.1:{settings.port}/docs",
            f"  Gateway   http://127.0.0.1:{settings.gateway_port}/stream  (SSE; /ws WebSocket)",
            f"  UI        http://127.0.0.1:{settings.ui_port}",
            f"  Redis     {where(servers.redis is not None, servers.redis_url, 'redis')}",
            f"  Postgres  {where(servers.postgres is not None, servers.pg_url, 'pg')}",
            "  Ctrl-C stops everything.",
            "",
        ]
    )


def _raise_exit(signum: int, frame: FrameType | None) -> NoReturn:
    """Until the supervisor takes over the signals, SIGTERM unwinds like Ctrl-C so servers stop."""
    raise SystemExit(128 + signum)


def _restart_reporter(live: LauncherSettings) -> RestartReporter:
    """Counts restarts in the Redis the processes use; short timeouts: Redis may be what died."""
    from redis import Redis

    from backend.bus.keys import Keys
    from backend.bus.process_restarts import ProcessRestartsStore

    client = Redis.from_url(live.effective_redis_url, socket_connect_timeout=1, socket_timeout=1)
    return RestartReporter(ProcessRestartsStore(client, Keys.from_settings(live)))


def run(settings: LauncherSettings) -> int:
    """Start everything, supervise until Ctrl-C/SIGTERM, tear down. Returns the exit status."""
    configure_logging(settings, service="launcher")
    try:
        enforce_deploy_policy(settings, "launcher")
    except InsecureSettings as exc:
        return _fail(str(exc).removeprefix("tickstream launcher: "))
    problem = check_ports(settings)
    if problem:
        return _fail(problem)
    try:
        processes = load_procfile()
    except OSError as exc:
        return _fail(f"cannot read {PROCFILE}: {exc.strerror}")

    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        check_reachable(settings)
        servers = start_embedded(settings)
    except EmbeddedServerError as exc:
        signal.signal(signal.SIGTERM, previous)
        return _fail(str(exc))
    except (KeyboardInterrupt, SystemExit):
        signal.signal(signal.SIGTERM, previous)
        return 130

    reporter: RestartReporter | None = None
    try:
        live = servers.apply(settings)
        from backend.storage.migrate import upgrade

        upgrade(live)
        reporter = _restart_reporter(live)
        supervisor = Supervisor(
            processes,
            lambda name: process_env(name, live, servers),
            cwd=REPO_ROOT,
            grace_s=SHUTDOWN_GRACE_SECONDS,
            on_restart=reporter,
        )
        print(_banner(settings, servers, list(processes)), flush=True)
        return supervisor.run()  # its own SIGINT/SIGTERM handlers: stop all, then return
    except (KeyboardInterrupt, SystemExit):
        return 130
    finally:
        if reporter is not None:
            reporter.close()
        if servers.redis is not None or servers.postgres is not None:
            print("tickstream: stopping the embedded servers", file=sys.stderr, flush=True)
        servers.stop()


def main() -> int:
    """Entry point for `make run`; settings come from the environment, once."""
    return run(get_settings())


if __name__ == "__main__":
    sys.exit(main())
