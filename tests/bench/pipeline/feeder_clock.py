"""`python -m feeder bench`, unchanged, plus the run's clock in its JSON.

    python -m tests.bench.pipeline.feeder_clock bench --tps N ... --json --out FILE

Adds `clock: {first_send, last_ack}` (time.monotonic(), i.e. CLOCK_MONOTONIC, which every
process on the machine shares) to the result, so the benchmark can put the views' and
Postgres's completion times on the same time line as the feeder's sends and acks.
"""

from __future__ import annotations

from typing import Any

from feeder import bench
from feeder.__main__ import main

_report = bench.Bench.report


def _report_with_clock(self: bench.Bench, elapsed: float, verification: dict[str, Any]) -> Any:
    result = _report(self, elapsed, verification)
    result["clock"] = {"first_send": self.stats.first_send, "last_ack": self.stats.last_ack}
    return result


bench.Bench.report = _report_with_clock  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
