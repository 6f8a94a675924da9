"""What one overload run is asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_JSON = Path("artifacts/bench/overload.json")


@dataclass
class Options:
    seconds: float = 60.0
    multiple: float = 10.0
    sustainable: float | None = None  # ticks/s; None: measure it
    measure_seconds: float = 15.0
    max_backlog: int | None = None  # ticks; None: the product's default (Settings)
    batch: int = 500
    senders: int = 16
    worker_processes: int = 2
    worker_threads: int = 2
    drain_timeout: float = 900.0
    stall_timeout: float = 60.0  # give up draining when nothing moved for this long
    stall_worker: float = 0.0  # SIGSTOP the worker for this long at the start of the overload
    json_path: Path = DEFAULT_JSON
