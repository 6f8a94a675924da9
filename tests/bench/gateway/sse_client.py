"""One healthy SSE client: raw asyncio socket, minimal HTTP/1.1 + SSE parsing, and for every
event its latency (receive time - publish time), both in ms on this machine's clock.

The publish time is the ms part of the event's ring id: the `id:` line on the gateway, the
`"ring_id"` the baseline adapter puts into each event's JSON (the old design sends no ids).
An httpx client per connection costs several times more CPU; at 1,000 connections in one or two
processes that would measure the clients, not the server.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from dataclasses import dataclass, field

RING_ID = b'"ring_id":"'
READ_SIZE = 65_536


def request_bytes(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()


def read_status(head: bytes) -> int:
    """The status code of an HTTP response head (0 when unreadable)."""
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


class Dechunker:
    """Transfer-Encoding: chunked, undone incrementally (uvicorn streams every write as one)."""

    def __init__(self) -> None:
        self._raw = bytearray()

    def feed(self, data: bytes) -> bytes:
        self._raw += data
        out = bytearray()
        raw = self._raw
        while True:
            end = raw.find(b"\r\n")
            if end < 0:
                break
            size = int(raw[:end].split(b";")[0] or b"0", 16)
            if len(raw) < end + 2 + size + 2:
                break
            out += raw[end + 2 : end + 2 + size]
            del raw[: end + 4 + size]
        return bytes(out)


def publish_ms(frame: bytes) -> int | None:
    """The ring id's ms of an event frame; None for snapshots, comments and the gateway's own
    messages (missed, reset: no id)."""
    if frame.startswith(b"id: "):
        if b"\nevent: snapshot" in frame[:64]:
            return None
        dash = frame.find(b"-", 4)
        return int(frame[4:dash]) if dash > 0 else None
    start = frame.find(RING_ID)
    if start < 0:
        return None
    start += len(RING_ID)
    return int(frame[start : frame.index(b"-", start)])


@dataclass
class Healthy:
    """A reading client and what it received."""

    path: str
    status: int = 0
    port: int = 0  # our end's port: how GET /clients names this client
    events: int = 0  # events with a publish time (not snapshots or comments)
    frames: int = 0
    error: str | None = None
    pub_ms: array = field(default_factory=lambda: array("d"))
    lat_ms: array = field(default_factory=lambda: array("f"))
    headers_seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, host: str, port: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE * 4)
        except OSError as exc:
            self.error = f"connect: {exc}"
            self.headers_seen.set()
            return
        self.port = writer.get_extra_info("sockname")[1]
        try:
            writer.write(request_bytes(host, port, self.path))
            head = await reader.readuntil(b"\r\n\r\n")
            self.status = read_status(head)
            self.headers_seen.set()
            if self.status != 200:
                return
            chunked = b"chunked" in head.lower()
            await self._read(reader, Dechunker() if chunked else None)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.headers_seen.set()
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, chunks: Dechunker | None) -> None:
        buffer = b""
        pub, lat = self.pub_ms, self.lat_ms
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                self.error = self.error or "closed by the server"
                return
            now = time.time() * 1000
            buffer += chunks.feed(data) if chunks is not None else data
            *frames, buffer = buffer.split(b"\n\n")
            self.frames += len(frames)
            for frame in frames:
                ms = publish_ms(frame)
                if ms is not None:
                    self.events += 1
                    pub.append(ms)
                    lat.append(now - ms)
