"""Run the Procfile's processes, restart the ones that die, stop them all on Ctrl-C / SIGTERM.

Each process runs as `/bin/sh -c "exec <command>"` (the Procfile uses `${PORT:-8000}`; `exec`
makes the pid we watch the program's own, so its exit status and signal are the program's) in
its own session, so one `killpg` reaches everything it forked (Dramatiq's worker processes, a
metrics server) and a terminal's Ctrl-C reaches only us: we decide the order of the shutdown.
Children write to the launcher's stdout/stderr directly: every process already logs JSON lines
with its `service`, so nothing is piped or prefixed. Our own lines name the process in
`process_name` (`process` is the pid in every LogRecord and cannot be set through `extra`).

A process that dies while we are not shutting down is restarted after `Backoff`'s delay; nothing
else is touched, so the other processes and the embedded servers never go down because one died.
On the first Ctrl-C or SIGTERM every process group gets SIGTERM and `grace_s` to drain (a
worker's last flush), then SIGKILL; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from backend.supervision.policy import DEFAULT_POLICY, Backoff, RestartPolicy

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often the loop looks for deaths and due restarts


@dataclass(frozen=True, slots=True)
class Restart:
    """One restart, as logged and as handed to `on_restart` when the process starts again."""

    process: str
    exit_code: int | None  # Popen's returncode: negative = killed by that signal
    restarts: int  # this process's restarts so far, this one included
    delay_s: float


def describe_exit(exit_code: int | None) -> dict[str, int | str | None]:
    """`{"exit_code": 3}` or `{"signal": "SIGKILL"}`: the log fields of a death."""
    if exit_code is not None and exit_code < 0:
        try:
            return {"signal": signal.Signals(-exit_code).name}
        except ValueError:
            return {"signal": str(-exit_code)}
    return {"exit_code": exit_code}


@dataclass
class _Child:
    name: str
    command: str
    backoff: Backoff
    proc: subprocess.Popen[bytes] | None = None
    due_at: float = 0.0  # when a dead process is to be started again (monotonic s)
    pending: Restart | None = None  # the restart waiting for `due_at`


class Supervisor:
    """`run()` blocks until a signal asks it to stop and every process is gone; returns 0."""

    def __init__(
        self,
        commands: Mapping[str, str],
        env_for: Callable[[str], dict[str, str]],
        *,
        cwd: Path,
        grace_s: float,
        on_restart: Callable[[Restart], None] | None = None,
        policy: RestartPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._children = {
            name: _Child(name, command, Backoff(policy)) for name, command in commands.items()
        }
        self._env_for = env_for
        self._cwd = cwd
        self._grace_s = grace_s
        self._on_restart = on_restart
        self._clock = clock
        self._stopping = False
        self._kill_now = False
        self._last_exit: dict[str, int | None] = {}

    # --- signals ------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            log.warning("second signal: killing every process now", extra={"signum": signum})
            self._kill_now = True
            self._signal_all(signal.SIGKILL)
            return
        log.info("stopping every process", extra={"signum": signum, "grace_s": self._grace_s})
        self._stopping = True

    def _signal_all(self, sig: signal.Signals) -> None:
        for child in self._children.values():
            if child.proc is not None:
                _signal_group(child.proc.pid, sig)

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        try:
            self.start_all()
            while not self._stopping:
                self.step()
                time.sleep(POLL_S)
        finally:
            self.shutdown()  # also when the loop itself fails: no process outlives the launcher
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return 0

    def start_all(self) -> None:
        for child in self._children.values():
            if not self._stopping:
                self._start(child)

    def step(self) -> None:
        """Notice deaths and schedule their restarts; start the processes whose delay is over."""
        now = self._clock()
        for child in self._children.values():
            if child.proc is not None:
                exit_code = child.proc.poll()
                if exit_code is not None:
                    self._died(child, exit_code, now)
            elif child.pending is not None and now >= child.due_at and not self._stopping:
                restart, child.pending = child.pending, None
                self._start(child)
                if self._on_restart is not None:
                    try:
                        self._on_restart(restart)
                    except Exception:  # a reporting bug must never stop the supervision
                        log.exception("on_restart failed", extra={"process_name": child.name})

    def _died(self, child: _Child, exit_code: int | None, now: float) -> None:
        assert child.proc is not None
        _signal_group(child.proc.pid, signal.SIGKILL)  # what it forked must not outlive it
        child.proc = None
        delay = child.backoff.exited(now)
        child.due_at = now + delay
        child.pending = Restart(child.name, exit_code, child.backoff.restarts, delay)
        log.warning(
            "process exited; restarting",
            extra={
                "process_name": child.name,
                **describe_exit(exit_code),
                "restarts": child.backoff.restarts,
                "delay_s": delay,
            },
        )

    def _start(self, child: _Child) -> None:
        try:
            child.proc = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {child.command}"],
                env=self._env_for(child.name),
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: one killpg reaches it all
            )
        except OSError as exc:
            log.error("cannot start", extra={"process_name": child.name, "error": str(exc)})
            child.proc = None
            self._died_before_start(child)
            return
        child.backoff.started(self._clock())
        log.info("started", extra={"process_name": child.name, "pid": child.proc.pid})

    def _died_before_start(self, child: _Child) -> None:
        now = self._clock()
        delay = child.backoff.exited(now)
        child.due_at = now + delay
        child.pending = Restart(child.name, None, child.backoff.restarts, delay)

    def shutdown(self) -> None:
        """SIGTERM every group, wait up to `grace_s` for them to drain, SIGKILL what is left."""
        self._stopping = True  # no restart from here on
        live = [c.proc for c in self._children.values() if c.proc is not None]
        for proc in live:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = self._clock() + self._grace_s
        while (
            any(proc.poll() is None for proc in live)
            and self._clock() < deadline
            and not self._kill_now
        ):
            time.sleep(POLL_S)
        for child in self._children.values():
            if child.proc is not None:
                if child.proc.poll() is None and not self._kill_now:
                    log.warning(
                        "killing after the grace period", extra={"process_name": child.name}
                    )
                _signal_group(child.proc.pid, signal.SIGKILL)  # stragglers in its group too
                child.proc.wait()
                self._last_exit[child.name] = child.proc.returncode
                log.info(
                    "stopped",
                    extra={"process_name": child.name, **describe_exit(child.proc.returncode)},
                )
                child.proc = None

    # --- for tests and the launcher -----------------------------------------------------------
    def pids(self) -> dict[str, int | None]:
        """The running pid of each process (None while it waits for its restart)."""
        return {n: c.proc.pid if c.proc else None for n, c in self._children.items()}

    def returncodes(self) -> dict[str, int | None]:
        """How each process last ended, once `shutdown()` has stopped it (None: still running)."""
        return dict(self._last_exit)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
