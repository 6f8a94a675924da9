"""What one replay benchmark is asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_JSON = Path("artifacts/bench/replay.json")
DEFAULT_DATABASE = "tickstream_replay_bench"


@dataclass
class Options:
    ticks: int = 10_000_000
    symbols: int = 10
    database: str = DEFAULT_DATABASE  # kept between runs (reused when it holds `ticks`)
    fresh: bool = False  # reseed even when the database holds the same seed
    drop: bool = False  # drop the database at the end (the smoke test)
    history_threads: int = 2
    sample_s: float = 1.0
    replay_timeout_s: float = 3_600.0
    phase_s: float = 30.0  # live ingest per latency phase
    rounds: int = 3
    live_tps: float = 1_000.0
    live_symbols: int = 5
    live_mode: str = "batch"  # the pipeline bench's modes: batch (POST /ingest/ticks) or single
    batch_linger_ms: float = 50.0  # the pipeline bench's: a batch goes out at 500 ticks or 50 ms
    skip_max: bool = False  # only the latency rounds
    skip_latency: bool = False  # only the replay at max
    profile: Path | None = None  # py-spy the history worker during the replay at max
    profile_s: float = 20.0
    json_path: Path = DEFAULT_JSON
