"""`python -m feeder bench`, unchanged, plus the run's clock in its JSON.

    python -m tests.bench.pipeline.feeder_clock bench --tps N ... --json --out FILE

Adds `clock: {first_send, last_ack, produced}` (time.monotonic(), i.e. CLOCK_MONOTONIC, which
every process on the machine shares) to the result, so the benchmark can put the views' and
Postgres's completion times on the same time line as the feeder's sends and acks. `produced` is
when the feeder had scheduled its last tick: offered / (produced - first_send) is the rate it
really offered (lower than asked when the feeder itself runs short of CPU).
"""

from __future__ import annotations

import time
from typing import Any

from feeder import bench
from feeder.__main__ import main

_report = bench.Bench.report
_produce = bench.Bench.produce


async def _produce_timed(self: bench.Bench) -> None:
    await _produce(self)
    self.produced_at = time.monotonic()  # type: ignore[attr-defined]


def _report_with_clock(self: bench.Bench, elapsed: float, verification: dict[str, Any]) -> Any:
    result = _report(self, elapsed, verification)
    result["clock"] = {
        "first_send": self.stats.first_send,
        "last_ack": self.stats.last_ack,
        "produced": getattr(self, "produced_at", None),
    }
    return result


bench.Bench.report = _report_with_clock  # type: ignore[method-assign]
bench.Bench.produce = _produce_timed  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
