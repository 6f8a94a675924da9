"""What one gateway benchmark is asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_JSON = Path("artifacts/bench/gateway.json")


@dataclass
class Options:
    clients: int = 1_000  # concurrent SSE connections on the one server process
    rate: float = 2_000.0  # events/s appended to the ring
    seconds: float = 25.0  # measured publishing time per run
    warmup: float = 3.0  # publishing before the measurement starts (not counted)
    symbols: int = 200  # symbols the events are spread over
    per_client: int = 2  # symbols each client follows (`symbols=`)
    all_share: float = 0.0  # share of clients following every symbol (no `symbols=`)
    stalled_share: float = 0.10  # share of clients whose sockets never read (stalled scenario)
    # What the stalled clients follow: "all" (every symbol: their kernel socket buffers fill
    # within seconds, so the server holds their backlog during the window) or "same" (as many
    # symbols as a healthy client: far slower to fill).
    stalled_follow: str = "all"
    tick_share: float = 0.2  # share of events that are tick.received (the rest symbol.updated)
    batch_ms: float = 10.0  # the publisher appends one pipeline every batch_ms
    client_procs: int = 2  # processes the clients are spread over
    runs: int = 3  # runs per scenario (the table shows medians)
    baseline: bool = True  # also run the old in-API broadcaster
    json_path: Path = DEFAULT_JSON
