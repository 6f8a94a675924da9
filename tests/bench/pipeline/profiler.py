"""py-spy on our API and worker children during one run: where the CPU went."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.bench.pipeline import report
from tests.bench.pipeline.systems import System

PROFILE_RATE = 100  # py-spy samples/s


class Profiler:
    """py-spy record (raw collapsed stacks, GIL holders only) of our API and the worker
    children during one run; the out dir also gets the raw stacks for flame graphs."""

    def __init__(self, out_dir: Path, seconds: float) -> None:
        self.out_dir = out_dir
        self.seconds = seconds
        self.procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, system: System) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        api = system.procs["api"].pid
        worker_kids = psutil.Process(system.procs["worker"].pid).children(recursive=True)
        targets = {"api": api}
        for k, kid in enumerate(worker_kids[:2]):
            targets[f"worker{k + 1}"] = kid.pid
        for name, pid in targets.items():
            out = self.out_dir / f"{name}.txt"
            args = [
                "py-spy",
                "record",
                "--format",
                "raw",
                "-o",
                str(out),
                "-d",
                str(int(self.seconds)),
                "-r",
                str(PROFILE_RATE),
                "--gil",  # only samples holding the GIL: where the CPU goes, not who waits
                "-p",
                str(pid),
            ]
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / args[0]), *args[1:]],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.procs[name] = (spy, out)

    def finish(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, (spy, out) in self.procs.items():
            try:
                spy.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            if out.exists():
                top = report.top_functions(out.read_text())
                # Samples holding the GIL / samples possible: how busy the interpreter was.
                top["gil_busy"] = round(top["samples"] / (PROFILE_RATE * self.seconds), 2)
                result[name] = top
        return result
