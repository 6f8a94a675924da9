"""GET /ws: the same events as SSE over a WebSocket, plus ops to change what it follows.

Client → gateway: `{"op": "subscribe"|"unsubscribe", "symbols": [...]}` ("*" for every symbol)
and `{"op": "resume", "after": "<id>"}`. Gateway → client: one JSON text message per event,
`{"id", "event", "data"}`, and its own `hello`, `subscribed`, `resumed` and `error` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from backend.core.realtime import (
    ALL_SYMBOLS,
    ERROR,
    HELLO,
    OP,
    RESUMED,
    SUBSCRIBED,
    ErrorMessage,
    Hello,
    Resumed,
    ResumeOp,
    Subscribed,
    SubscribeOp,
    UnsubscribeOp,
)
from backend.core.stream_ids import parse_id
from backend.gateway import session
from backend.gateway.client import Client
from backend.gateway.frames import Control, with_missed
from backend.gateway.hub import Hub
from backend.gateway.requests import Wanted

log = logging.getLogger(__name__)


class WsSession:
    def __init__(self, hub: Hub, client: Client, socket: WebSocket, heartbeat_s: float) -> None:
        self.hub = hub
        self.client = client
        self.socket = socket
        self.heartbeat_s = heartbeat_s
        self._starting: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._generation = 0  # grows on each resume: a batch taken before it is not sent

    async def run(self, wanted: Wanted) -> None:
        client = self.client
        hello = Hello(heartbeat_s=self.heartbeat_s, queue=client.capacity)
        await self._send(Control.of(HELLO, hello).ws)
        self._begin(wanted.after, wanted.invalid_after)
        writer = asyncio.create_task(self._write())
        try:
            await self._read_ops()
        finally:
            writer.cancel()
            if self._starting is not None:
                self._starting.cancel()
            for task in (writer, self._starting):
                if task is not None:
                    with contextlib.suppress(BaseException):
                        await task

    def _begin(self, after: Any, invalid: str | None = None) -> None:
        async def start() -> None:
            try:
                how = await session.start(self.hub, self.client, after, invalid=invalid)
            except Exception as exc:  # Redis lost during a resume: close, the client resumes
                log.debug("ws client %s could not start: %r", self.client.number, exc)
                async with self._send_lock:
                    await self.socket.close(code=1011)
                return
            self.hub.metrics.connections.labels("ws", how).inc()

        self._starting = asyncio.create_task(start())

    async def _read_ops(self) -> None:
        while True:
            try:
                text = await self.socket.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            try:
                op = OP.validate_json(text)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(p) for p in first.get("loc", ())) or "op"
                await self._error(field, first.get("msg", "invalid"))
                continue
            if isinstance(op, ResumeOp):
                await self._resume(op.after)
            else:
                await self._follow(op)

    async def _follow(self, op: SubscribeOp | UnsubscribeOp) -> None:
        client, hub = self.client, self.hub
        await client.went_live.wait()  # a change applies to a live client only
        everything = ALL_SYMBOLS in op.symbols
        current = client.symbols
        if isinstance(op, SubscribeOp):
            symbols = None if everything or current is None else current | set(op.symbols)
        elif everything:
            symbols = frozenset()
        elif current is None:
            await self._error("symbols", "following every symbol: unsubscribe '*' first")
            return
        else:
            symbols = current - set(op.symbols)
        new = hub.follow(client, symbols if symbols is None else frozenset(symbols))
        if new is None or new:
            client.pin(hub.snapshot_of(new))  # at the hub's position: later events follow it
        await self._send(
            Control.of(
                SUBSCRIBED,
                Subscribed(
                    symbols=sorted(client.symbols) if client.symbols is not None else None,
                    types=sorted(client.types) if client.types is not None else None,
                ),
            ).ws
        )

    async def _resume(self, after_text: str) -> None:
        client, hub = self.client, self.hub
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(BaseException):
                await self._starting
        hub.detach(client)
        client.queue.clear()
        client.ready.clear()
        client.cursor = (0, 0)
        self._generation += 1
        await self._send(Control.of(RESUMED, Resumed(after=after_text)).ws)
        self._begin(parse_id(after_text))

    async def _write(self) -> None:
        client, metrics = self.client, self.hub.metrics
        while True:
            await client.ready.wait()
            generation = self._generation
            dropped, items = client.take()
            if dropped is not None:
                metrics.dropped.inc(dropped.count)
            messages = [item.ws for item in with_missed(dropped, items)]
            async with self._send_lock:
                if generation != self._generation:
                    continue  # taken before a resume re-positioned the stream
                for message in messages:
                    await self.socket.send_text(message.decode())
            metrics.record_write(client, items)

    async def _error(self, field: str, reason: str) -> None:
        await self._send(Control.of(ERROR, ErrorMessage(field=field, reason=reason)).ws)

    async def _send(self, message: bytes) -> None:
        async with self._send_lock:
            await self.socket.send_text(message.decode())
