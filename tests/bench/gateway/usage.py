"""CPU and RSS of one process from /proc, and a thread that samples its RSS over time."""

from __future__ import annotations

import os
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (fields 14 and 15 of /proc/<pid>/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields after "(comm) ": state is [0]


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (/proc/<pid>/statm, second field, in pages)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


class RssSampler(threading.Thread):
    """Every `every` s: (seconds since start, RSS) of `pid`."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while True:
            try:
                self.samples.append((round(time.monotonic() - self._t0, 2), rss_bytes(self.pid)))
            except OSError:
                return
            if self._halt.wait(self.every):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
