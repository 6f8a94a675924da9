"""The sustainable rate: what calc and Postgres keep up with when offered all they can take."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis import Redis

from backend.bus.keys import Keys
from backend.bus.ledger import CALC_TICKS, INGEST_ACCEPTED, ROWS_WRITTEN, read_gauges_sync
from tests.bench.overload.ledger import Ledger, Tally
from tests.bench.overload.options import Options
from tests.bench.overload.senders import offer

SUSTAINABLE_DEFINITION = (
    "the slower of the calc and Postgres drain rates (stats counters calc_ticks, rows_written) "
    "over the last 2/3 of {s:g} s in which {senders} senders offered {batch}-tick batches as "
    "fast as they could, API and worker sharing the box"
)


def measure_sustainable(
    api_url: str, ledger: Ledger, tally: Tally, redis: Redis, keys: Keys, opts: Options
) -> dict[str, Any]:
    """Offer as fast as possible; the rate both calc and Postgres keep up with is sustainable."""
    warm = opts.measure_seconds / 3
    marks: list[tuple[float, int, int, int]] = []

    def mark() -> None:
        counters = read_gauges_sync(
            redis, keys, heartbeat_timeout_ms=10_000, now_ms=time.time() * 1000
        ).counters
        accepted, calc, written = (
            int(counters.get(name, 0)) for name in (INGEST_ACCEPTED, CALC_TICKS, ROWS_WRITTEN)
        )
        marks.append((time.monotonic(), accepted, calc, written))

    async def run() -> None:
        async def marker() -> None:
            await asyncio.sleep(warm)
            mark()

        task = asyncio.create_task(marker())
        await offer(api_url, ledger, tally, opts, tps=None, seconds=opts.measure_seconds)
        await task
        mark()

    asyncio.run(run())
    (t0, a0, c0, w0), (t1, a1, c1, w1) = marks
    dt = t1 - t0
    calc_rate, persist_rate = (c1 - c0) / dt, (w1 - w0) / dt
    return {
        "seconds": opts.measure_seconds,
        "window_s": dt,
        "accept_tps": (a1 - a0) / dt,
        "calc_tps": calc_rate,
        "persist_tps": persist_rate,
        "tps": min(calc_rate, persist_rate),
        "http_429": tally.http_429,
    }
