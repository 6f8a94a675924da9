"""What one pipeline benchmark is asked to do: systems, modes, rates, layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path("artifacts/bench/pipeline.json")
MODES = ("single", "batch")
SYSTEMS = ("ours", "baseline")


@dataclass
class Options:
    runs: int = 3
    duration: float = 10.0
    single_tps: float = 1_000.0
    batch_tps: float = 10_000.0
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

    def tps(self, mode: str) -> float:
        return self.single_tps if mode == "single" else self.batch_tps
