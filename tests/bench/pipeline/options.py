"""What one pipeline benchmark is asked to do: systems, modes, rates, layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path("artifacts/bench/pipeline.json")
MODES = ("single", "wrk", "batch")
SYSTEMS = ("ours", "baseline")


@dataclass
class Options:
    runs: int = 3
    duration: float = 10.0  # s of sending per single-mode run
    single_tps: float = 1_000.0
    batch_tps: float = 10_000.0
    batch_duration: float | None = None  # None: `duration`
    # The baseline may be offered less in batch mode (None: the same as ours): at 50,000/s it
    # would queue 3M ticks it stores at ~2,000/s. What it accepts is its ceiling either way.
    baseline_batch_tps: float | None = None
    baseline_batch_duration: float | None = None
    wrk_duration: float = 15.0  # issue 17: `wrk -t1 -c32`, 15 s
    wrk_threads: int = 1
    wrk_connections: int = 32
    batch_size: int = 500
    batch_linger_ms: float = 50.0  # at 10,000 ticks/s a 500-tick batch fills in 50 ms
    connections: int = 32
    symbols: int = 5
    api_procs: int = 1
    worker_processes: int = 2
    worker_threads: int = 4
    systems: tuple[str, ...] = SYSTEMS
    modes: tuple[str, ...] = MODES
    baseline_wait: float = 0.0  # s to wait for tests/bench/baseline/app.py to appear
    profile: Path | None = None  # py-spy our API and a worker during the first batch run
    profile_seconds: float = 10.0
    profile_mode: str = "batch"
    json_path: Path = DEFAULT_JSON
    plot: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def tps(self, mode: str, system: str = "ours") -> float:
        if mode == "single":
            return self.single_tps
        if system == "baseline" and self.baseline_batch_tps is not None:
            return self.baseline_batch_tps
        return self.batch_tps

    def seconds(self, mode: str, system: str = "ours") -> float:
        """How long the load generator sends in `mode`."""
        if mode == "wrk":
            return self.wrk_duration
        if mode == "batch":
            ours = self.batch_duration if self.batch_duration is not None else self.duration
            if system == "baseline" and self.baseline_batch_duration is not None:
                return self.baseline_batch_duration
            return ours
        return self.duration
