"""GET /stream: Server-Sent Events. One response per client, written by its own writer task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.gateway import session
from backend.gateway.client import Client
from backend.gateway.frames import HEARTBEAT, sse_preamble, with_missed
from backend.gateway.hub import Hub
from backend.gateway.requests import Wanted

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


class SseResponse(Response):
    """Streams one client's events until it disconnects; always unregisters it."""

    media_type = "text/event-stream"

    def __init__(
        self, hub: Hub, client: Client, wanted: Wanted, *, heartbeat_s: float, retry_ms: int
    ) -> None:
        # Like StreamingResponse: no body attribute, so no Content-Length header.
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self.hub = hub
        self.client = client
        self.wanted = wanted
        self.heartbeat_s = heartbeat_s
        self.retry_ms = retry_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub, client = self.hub, self.client
        tasks: list[asyncio.Task[Any]] = []
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await _body(send, sse_preamble(self.retry_ms))
            tasks = [
                asyncio.create_task(self._start()),
                asyncio.create_task(self._write(send)),
                asyncio.create_task(_wait_disconnect(receive)),
            ]
            # Until the client leaves or the writer fails; or the start fails (Redis lost during
            # a resume): the stream ends, and the client reconnects with its last id.
            waiting = set(tasks)
            while True:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                start = tasks[0]
                if done != {start} or start.cancelled() or start.exception() is not None:
                    break
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.debug("sse client %s ended: %r", client.number, task.exception())
        except OSError:
            pass  # the client went away while we wrote
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            hub.unregister(client)

    async def _start(self) -> None:
        how = await session.start(
            self.hub, self.client, self.wanted.after, invalid=self.wanted.invalid_after
        )
        self.hub.metrics.connections.labels("sse", how).inc()

    async def _write(self, send: Send) -> None:
        client, metrics = self.client, self.hub.metrics
        while True:
            if not client.ready.is_set():
                try:
                    async with asyncio.timeout(self.heartbeat_s):
                        await client.ready.wait()
                except TimeoutError:
                    await _body(send, HEARTBEAT)
                    continue
            dropped, items = client.take()
            if dropped is not None:
                metrics.dropped.inc(dropped.count)
            chunks = [item.sse for item in with_missed(dropped, items)]
            if not chunks:
                continue
            await _body(send, b"".join(chunks))
            metrics.record_write(client, items)


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def client_address(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"
