"""The embedded PostgreSQL: the pgserver wheel's binaries, imported only when really needed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from backend.embedded.common import (
    _MISSING_EXTRA,
    LOOPBACK,
    ChildServer,
    EmbeddedServerError,
    _last_line,
    _log_tail,
)

PG_SYSTEM_USER = "pgserver"  # the account pgserver itself uses; postgres refuses to run as root


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


class EmbeddedPostgres(ChildServer):
    """The pgserver wheel's PostgreSQL as a child process, on TCP 127.0.0.1 only, trust auth."""

    port_var = "EMBEDDED_PG_PORT"
    url_var = "PG_URL"
    name = "PostgreSQL"
    program = "PostgreSQL"
    ready_check = "accept connections"
    log_name = "postgres.log"
    pid_name = "postmaster.pid"
    stop_signal = signal.SIGINT  # SIGINT = fast shutdown
    busy_markers = ("Address already in use", "could not create any TCP/IP")
    superuser = "postgres"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.superuser}@{LOOPBACK}:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        """initdb if needed, start the postmaster, return once a connection works."""
        if self.running:
            return
        bin_dir = _pg_bin()
        account = _pg_account()
        self._prepare_data_dir(account)
        self._stop_orphan()
        self._check_port()
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

    def _pid_is_ours(self, pid: int) -> bool | None:
        """Whether postmaster.pid, left by an earlier run, names a postgres on this data dir.

        A dead pid is left for postgres (None), which then also checks that no old backend still
        holds shared memory. A pid now used by an unrelated process is removed (postgres, not
        being root, cannot tell and would refuse to start). A live postmaster orphaned by a
        launcher that died is shut down.
        """
        import psutil

        try:
            proc = psutil.Process(pid)
            return proc.name() == "postgres" and str(self.data_dir) in proc.cmdline()
        except psutil.NoSuchProcess:
            return None
        except psutil.Error:
            return False

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
        if account is not None:  # create the log now, to hand it to the postgres account
            self.log_path.open("ab").close()
            os.chown(self.log_path, account.uid, account.gid)
        self._spawn(cmd, **kwargs)

    def _wait_ready(self, deadline: float, timeout: float) -> bool:
        """True once `select 1` works; False if postgres quit because old backends hold shmem."""
        import psycopg

        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0

        def ready() -> bool:
            try:
                with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("select 1")
                return True
            except psycopg.OperationalError:
                return False  # not listening yet, or still replaying WAL after a crash

        def exited(code: int) -> None:
            fresh = self._log_since(log_start)
            self._raise_if_busy(fresh)
            if "is still in use" in fresh and time.monotonic() < deadline:
                return
            raise self._exit_error(code, fresh or _log_tail(self.log_path))

        return self._poll_until_ready(ready, exited, deadline, timeout, interval=0.1)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                return fh.read()[-16384:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """`pg_ctl stop -m fast` (roll back clients, checkpoint, exit); SIGKILL as a last resort."""
        super().stop(timeout)

    def _request_shutdown(self, timeout: float) -> None:
        account = _pg_account()
        self._pg_ctl_stop(_pg_bin(), account, timeout)

    def _pg_ctl_stop(self, bin_dir: Path, account: _Account | None, timeout: float) -> None:
        args = ["pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._pg_run(bin_dir, account, [*args, "-t", f"{timeout:.0f}"], timeout + 5)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the postmaster, like a crash (for chaos tests); the next start() recovers.

        The orphaned backends notice their postmaster died and exit; we wait for them (and kill
        stragglers) so an immediate restart doesn't find shared memory still in use.
        """
        import psutil

        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        super()._kill(proc)
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
