"""The Pipeline page's Processes part: how often `make run` restarted each process, and why.

Pure formatting of `GET /stats`'s `processes` (the launcher's restart counter), so the page only
draws what these functions return and the tests need no Streamlit. Entries are read through the
backend's own contract (`ProcessRestarts`), so a renamed field fails a test rather than showing
zeros; an entry that does not parse is left out instead of breaking the page.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from backend.core.processes import ProcessRestarts

NONE = "—"


@dataclass(frozen=True, slots=True)
class ProcessRow:
    process: str
    restarts: int
    last_exit: str  # "SIGKILL", "exit 1" or "—"
    last_restart: str  # "42 s ago", "3 min ago", ... or "—"

    @property
    def note(self) -> str | None:
        """What shows under the count: the last death and when, or nothing if never restarted."""
        if not self.restarts:
            return None
        return f"last: {self.last_exit} · {self.last_restart}"


def format_exit(exit_code: int | None) -> str:
    """Popen's convention: negative = the signal that killed it."""
    if exit_code is None:
        return NONE
    if exit_code < 0:
        try:
            return signal.Signals(-exit_code).name
        except ValueError:
            return f"signal {-exit_code}"
    return f"exit {exit_code}"


def format_ago(then_ms: int | None, now_ms: int) -> str:
    if then_ms is None:
        return NONE
    seconds = max(now_ms - then_ms, 0) / 1000
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86_400:.1f} d ago"


def process_rows(stats: Mapping[str, Any] | None, now_ms: int) -> list[ProcessRow]:
    """One row per process in `/stats`'s `processes`, sorted by name; [] when absent (an API
    from before the counter, or processes supervised by a platform rather than `make run`)."""
    processes = (stats or {}).get("processes")
    if not isinstance(processes, Mapping):
        return []
    rows = []
    for name, raw in sorted(processes.items()):
        try:
            restarts = ProcessRestarts.model_validate(raw)
        except ValidationError:
            continue
        rows.append(
            ProcessRow(
                process=str(name),
                restarts=restarts.count,
                last_exit=format_exit(restarts.last_exit_code),
                last_restart=format_ago(restarts.last_restart_ms, now_ms),
            )
        )
    return rows


def processes_caption(rows: list[ProcessRow]) -> str:
    if not rows:
        return "No process has been restarted (counted by the `make run` launcher)."
    total = sum(row.restarts for row in rows)
    return (
        f"{total:,} restart{'' if total == 1 else 's'} by the `make run` launcher: a process "
        "that dies is started again after 1 s, doubling to 30 s while it keeps dying"
    )
