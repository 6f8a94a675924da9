"""CPU seconds and peak RSS of the processes that make up one system under test.

CPU is counted over whole process trees, including processes that exit during a run: a
parent's `children_user/children_system` hold the CPU of children it has reaped (PostgreSQL
backends of closed connections, Dramatiq children), so a tree's total is the root's own and
reaped-children times plus the live descendants' times. RSS is sampled every `interval` s;
for PostgreSQL (postmaster + backends) the PSS sum, since backends share their buffers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psutil

MB = 1024 * 1024


@dataclass
class Group:
    """One part of a system: a root pid; `split` labels each child separately for RSS."""

    label: str
    pid: int
    split: bool = False  # True: "<label> child k" per child (uvicorn/dramatiq workers)
    summed: bool = False  # True: RSS summed over the tree (PostgreSQL: postmaster + backends)


def _own_cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _pss(proc: psutil.Process) -> int:
    info = proc.memory_full_info()
    return int(getattr(info, "pss", info.rss))


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by the tree under `pid`, including reaped children."""
    try:
        root = psutil.Process(pid)
        total = _own_cpu(root)
        kids = root.children(recursive=True)
    except psutil.Error:
        return 0.0
    for kid in kids:
        try:
            total += _own_cpu(kid)
        except psutil.Error:
            continue  # exited meanwhile: its CPU is in the parent's children times now
    return total


class RssSampler(threading.Thread):
    """Peak RSS per labelled process of the given groups, sampled every `interval` s."""

    def __init__(self, groups: list[Group], interval: float = 0.5) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.groups = groups
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self._halt = threading.Event()

    def sample(self) -> None:
        for g in self.groups:
            try:
                root = psutil.Process(g.pid)
                kids = root.children(recursive=True)
            except psutil.Error:
                continue
            readings: list[tuple[str, int]] = []
            rss_sum = 0
            for k, proc in enumerate([root, *kids]):
                try:
                    # Summed trees (PostgreSQL) share memory: PSS splits it fairly, RSS would
                    # count shared_buffers once per backend.
                    rss = _pss(proc) if g.summed else proc.memory_info().rss
                except psutil.Error:
                    continue
                rss_sum += rss
                if g.split and kids:
                    name = g.label + (" parent" if k == 0 else f" child {k}")
                    readings.append((name, rss))
            if g.summed or not g.split or not kids:
                readings.append((g.label + (" (PSS sum)" if g.summed else ""), rss_sum))
            for name, rss in readings:
                self.peaks[name] = max(self.peaks.get(name, 0), rss)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, float]:
        """Stop; the peaks in MB."""
        self._halt.set()
        self.join(5)
        self.sample()
        return {name: round(v / MB, 1) for name, v in sorted(self.peaks.items())}


def groups_cpu(groups: list[Group]) -> dict[str, float]:
    """CPU seconds so far per group (label -> s)."""
    return {g.label: tree_cpu(g.pid) for g in groups}
