"""What the embedded servers share: the error, port / pid / signal helpers, and ChildServer.

ChildServer owns the child process (`_proc`) and the mechanics every server needs the same way:
spawning into its own session, waiting until it answers, cleaning up after a launcher that died,
stopping with a signal and SIGKILL as a fallback, and crashing on purpose. The subclasses say
what differs as class attributes and a few small methods.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

LOOPBACK = "127.0.0.1"
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


# --- the child process ---------------------------------------------------------------------


class StopsOnExit:
    """`with x:` ends with x.stop(), however the block ends."""

    def stop(self) -> None:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ChildServer(StopsOnExit):
    """A server binary run as our child process, with its data and log under `data_dir`."""

    port_var: ClassVar[str]  # the settings that get the user out of a port clash
    url_var: ClassVar[str]
    name: ClassVar[str]  # for messages: "an embedded {name} already runs on ..."
    program: ClassVar[str]  # for messages: "{program} exited with code ..."
    ready_check: ClassVar[str]  # for messages: "{program} did not {ready_check} within ..."
    log_name: ClassVar[str]
    pid_name: ClassVar[str]  # the pid file the server itself writes into data_dir
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM  # its clean-shutdown signal
    busy_markers: ClassVar[tuple[str, ...]] = ("Address already in use",)

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    @property
    def pid_path(self) -> Path:
        return self.data_dir / self.pid_name

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        raise NotImplementedError

    # --- starting ---

    def _check_port(self) -> None:
        if not _port_is_free(self.port):
            raise _busy(self.port, self.port_var, self.url_var)

    def _raise_if_busy(self, log_text: str) -> None:
        if any(marker in log_text for marker in self.busy_markers):
            raise _busy(self.port, self.port_var, self.url_var)

    def _spawn(self, cmd: list[str], **popen_kwargs: Any) -> None:
        """Start `cmd` with stdout and stderr appended to the log."""
        with self.log_path.open("ab") as log:
            # Own session: a Ctrl-C in the terminal must not stop the server before the
            # workers; it reaches the launcher, which stops the servers last.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent(self.stop_signal),
                **popen_kwargs,
            )

    def _poll_until_ready(
        self,
        ready: Callable[[], bool],
        exited: Callable[[int], None],
        deadline: float,
        timeout: float,
        interval: float,
    ) -> bool:
        """True once `ready()`; False if the server quit and `exited(code)` returned (retry).

        `exited` raises to give up. Past `deadline` the server is killed and we give up.
        """
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                exited(code)
                return False
            if ready():
                return True
            if time.monotonic() >= deadline:
                self.kill()
                raise EmbeddedServerError(
                    f"{self.program} did not {self.ready_check} within {timeout:g}s "
                    f"(log: {self.log_path})"
                )
            time.sleep(interval)

    def _exit_error(self, code: int, log_text: str) -> EmbeddedServerError:
        return EmbeddedServerError(
            f"{self.program} exited with code {code} while starting: "
            f"{_last_line(log_text)} (log: {self.log_path})"
        )

    def _stop_orphan(self) -> None:
        """Deal with the pid file of an earlier run: stop its server if its launcher died."""
        pid = _pid_from_file(self.pid_path)
        if pid is None:
            return
        ours = self._pid_is_ours(pid)
        if ours is None:
            return
        if not ours:  # stale file; the pid is gone or was reused
            self.pid_path.unlink(missing_ok=True)
            return
        if not _is_orphan(pid):
            raise EmbeddedServerError(
                f"an embedded {self.name} already runs on {self.data_dir} (pid {pid}): "
                "stop that launcher first or set VAR_DIR"
            )
        self._request_shutdown(timeout=30)
        _terminate_pid(pid, self.stop_signal, timeout=10)

    def _pid_is_ours(self, pid: int) -> bool | None:
        """Whether `pid` is this server on this data dir; None to leave its pid file alone."""
        raise NotImplementedError

    # --- stopping ---

    def _request_shutdown(self, timeout: float) -> None:
        """Ask the server to shut down by some means other than `stop_signal` (default: none)."""

    def stop(self, timeout: float = 10.0) -> None:
        """`stop_signal` (the server shuts down cleanly), SIGKILL if it takes over `timeout`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            self._request_shutdown(timeout)
            if proc.poll() is None:
                proc.send_signal(self.stop_signal)
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
        self._kill(proc)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self
