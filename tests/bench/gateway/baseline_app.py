"""The baseline: the old design, `uvicorn tests.bench.gateway.baseline_app:create_app --factory`.

Before the gateway, GET /stream lived in the API: one in-process broadcaster offering each event
to every subscriber's bounded drop-oldest queue (1,000 events), no ids, no snapshot, no resume.
That design is `tests/bench/baseline` (stream.py, subscriber.py, views.py: the pipeline bench's
naive monolith). Here its fan-out and SSE route are fed from the same ring the gateway reads
(one XREAD BLOCK reader, as the old API's one pub/sub reader), so both get the same events at
the same time. The only addition: each event's JSON carries its `"ring_id"` so the clients can
measure latency from the same publish time (the old wire format has no id to carry it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from backend.bus.keys import Keys
from backend.bus.realtime import Entry, Ring, RingReader
from backend.settings import Settings, get_settings
from tests.bench.baseline.stream import stream_router
from tests.bench.baseline.views import Views

log = logging.getLogger(__name__)


def stamped(entry: Entry) -> bytes:
    """The event's JSON with its ring id as the first field."""
    return b'{"ring_id":"' + entry.id_text.encode() + b'",' + entry.payload[1:]


async def _fan_out(reader: RingReader, views: Views) -> None:
    """Read the ring from its tail on, forever; a failed read is logged and retried (a silent
    death of this task would look like a stalled server)."""
    position = None
    while True:
        try:
            if position is None:
                position = (await reader.tail()).last_id
            for entry in await reader.read_live(position, 1_000, 5_000):
                position = entry.id
                if entry.symbol is not None:
                    views.publish(stamped(entry), entry.symbol)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("baseline: ring read failed; retrying")
            await asyncio.sleep(0.2)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    views = Views(settings.stale_after)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url)
        reader = RingReader(redis, Ring.from_settings(settings), Keys.from_settings(settings))
        task = asyncio.create_task(_fan_out(reader, views))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await redis.aclose()

    app = FastAPI(title="Tickstream old in-API broadcaster (baseline)", lifespan=lifespan)
    app.include_router(stream_router(settings, views))

    @app.get("/health/liveness")
    async def liveness() -> dict[str, str]:
        return {"status": "ok"}

    return app
