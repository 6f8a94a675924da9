"""Gateway benchmark (`make bench-gateway`): 1,000 SSE clients on one gateway process at 2,000
events/s published; delivery latency, CPU per 1,000 deliveries, RSS; healthy vs 10 % stalled
clients; ours vs the old in-API broadcaster.

    python -m tests.bench.gateway [--clients 1000] [--rate 2000] [--seconds 25] ... (see `cli`)

Layout: `options` and `cli` (the command line), `events` (what is published), `publisher` (the
paced appends to the ring), `clients` (the client processes' entry point), `sse_client` and
`stalled` (one healthy and one stalled connection), `baseline_app` (the old design, fed from the
same ring), `usage` (CPU and RSS of the server from /proc), `scenario` (one measured run),
`run` (every run, the JSON), `summary` and `render` (the report).
"""

from tests.bench.gateway.cli import main

__all__ = ["main"]
