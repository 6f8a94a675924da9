"""Clients and publishers for the gateway's integration tests.

`SseStream` reads one SSE connection in a thread and keeps every frame (events, comments,
`retry:`), so a test waits on what it has seen (`wait_for`) instead of blocking on a read; the
gateways these tests start send heartbeats often, so a closed stream's thread notices at once.
`Publisher` appends to the realtime ring with the product's writers: `Ring` + `Outgoing` for
ticks and other events, `queue_write` (view_write.lua) for `symbol.updated`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from redis import Redis
from websockets.sync.client import ClientConnection, connect

from backend.bus.events import outgoing
from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.bus.views import queue_write
from backend.core.events import TickReceived
from backend.core.ticks import us_to_iso
from backend.settings import Settings
from tests.support.waiting import wait_for

FAST = {"GATEWAY_HEARTBEAT_S": "0.3"}  # every test gateway: a stream never sits silent long


@dataclass
class Frame:
    """One SSE event (`event`, `data`, `id`), or a comment (`comment`), or a `retry:` hint."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    comment: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.data or "null")


@dataclass
class SseStream:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    follow_redirects: bool = False
    frames: list[Frame] = field(default_factory=list)
    status: int | None = None
    response_headers: httpx.Headers | None = None
    body: bytes = b""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._answered = threading.Event()
        self._ended = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()
        assert self._answered.wait(10), f"no answer from {self.url}"

    def _run(self) -> None:
        try:
            with (
                httpx.Client(
                    timeout=httpx.Timeout(5, read=10), follow_redirects=self.follow_redirects
                ) as client,
                client.stream("GET", self.url, headers=self.headers) as response,
            ):
                self.status = response.status_code
                self.response_headers = response.headers
                if response.status_code != 200:
                    self.body = response.read()
                    return
                self._answered.set()
                pending = Frame()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    pending = self._line(line, pending)
        except httpx.HTTPError:
            pass
        finally:
            self._answered.set()
            self._ended.set()

    def _line(self, line: str, pending: Frame) -> Frame:
        if line == "":
            if pending.event is not None or pending.data is not None:
                with self._lock:
                    self.frames.append(pending)
            return Frame()
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "":
            with self._lock:
                self.frames.append(Frame(comment=value))
        elif name == "retry":
            with self._lock:
                self.frames.append(Frame(retry=int(value)))
        elif name == "event":
            pending.event = value
        elif name == "data":
            pending.data = value if pending.data is None else pending.data + "\n" + value
        elif name == "id":
            pending.id = value
        return pending

    # --- reading what arrived -------------------------------------------------------------
    def events(self, kind: str | None = None) -> list[Frame]:
        with self._lock:
            frames = list(self.frames)
        return [f for f in frames if f.event is not None and (kind is None or f.event == kind)]

    def wait_events(self, kind: str | None, n: int, timeout: float = 10) -> list[Frame]:
        """The first `n` events of `kind` (every event when None), once that many arrived."""
        got = wait_for(
            lambda: len(self.events(kind)) >= n and self.events(kind),
            timeout, interval=0.02, what=f"{n} {kind or 'events'} on {self.url}",
        )  # fmt: skip
        return got[:n]

    def wait_until(self, predicate: Callable[[list[Frame]], Any], what: str) -> Any:
        return wait_for(lambda: predicate(self.events()), 10, interval=0.02, what=what)

    def close(self) -> None:
        self._stop.set()
        assert self._ended.wait(10), "the stream's reader did not stop"

    @property
    def ended(self) -> bool:
        return self._ended.is_set()


@contextlib.contextmanager
def sse(
    url: str, headers: dict[str, str] | None = None, follow_redirects: bool = False
) -> Iterator[SseStream]:
    stream = SseStream(url, headers or {}, follow_redirects)
    try:
        yield stream
    finally:
        stream.close()


class StalledClient:
    """A raw HTTP/1.1 SSE request (a tiny receive buffer) whose response is not read until
    `read_until` or `read_to_end`: its socket fills and the gateway's writer for it blocks."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        lines = ["GET /stream HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""

    def read_to_end(self, timeout: float) -> list[Frame]:
        """Everything until the response ends (its last, empty chunk), within `timeout`."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while not self.raw.endswith(b"\r\n0\r\n\r\n"):
            assert time.monotonic() < deadline, "the response did not end"
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            self.raw += chunk
        return parse_sse(dechunk(self.raw.partition(b"\r\n\r\n")[2]))

    def read_until(self, marker: bytes) -> list[Frame]:
        raw = self.raw
        self.sock.settimeout(10)
        while True:
            head, _, body = raw.partition(b"\r\n\r\n")
            text = dechunk(body)
            if marker in text and text.endswith(b"\n\n"):  # up to a whole frame
                break
            chunk = self.sock.recv(1 << 20)
            assert chunk, "the gateway closed the stalled client's stream"
            raw += chunk
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
        return parse_sse(text)

    def close(self) -> None:
        self.sock.close()


def dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, found, rest = rest.partition(b"\r\n")
        if not found:  # a chunk's size still arriving
            return out
        size = int(size_line, 16)
        if len(rest) < size + 2:  # a chunk still arriving: keep what came of it
            return out + rest
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def parse_sse(text: bytes) -> list[Frame]:
    frames = []
    for block in text.decode().split("\n\n"):
        frame = Frame()
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name in ("event", "data", "id"):
                setattr(frame, name, value)
        if frame.event is not None and frame.data is not None:
            frames.append(frame)
    return frames


# --- WebSocket ------------------------------------------------------------------------------
def ws_url(http_url: str) -> str:
    return "ws" + http_url.removeprefix("http")


def receive(socket: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return orjson.loads(socket.recv(timeout=timeout))


def receive_until(
    socket: ClientConnection, done: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> list[dict[str, Any]]:
    """Every message up to and including the first `done` one."""
    got: list[dict[str, Any]] = []
    while True:
        message = receive(socket, timeout)
        got.append(message)
        if done(message):
            return got


def open_ws(url: str, **kwargs: Any) -> ClientConnection:
    return connect(ws_url(url), open_timeout=10, **kwargs)


# --- publishing -----------------------------------------------------------------------------
class Publisher:
    """Appends events to this test's ring the way the product does; numbers them per symbol."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.ring = Ring.from_settings(settings)
        self.keys = Keys.from_settings(settings)
        self._ts_us = 1_700_000_000_000_000
        self._n = 0

    def ticks(self, symbol: str, count: int) -> list[str]:
        """`count` tick.received events of `symbol`; their event ids, in order."""
        ids = []
        with self.redis.pipeline(transaction=False) as pipe:
            for _ in range(count):
                self._n += 1
                event_id = f"{symbol}-{self._n}"
                ids.append(event_id)
                self.ring.queue_append(pipe, outgoing(tick_event(symbol, event_id, self._n)))
            pipe.execute()
        return ids

    def view(self, symbol: str, price: float, **extra: Any) -> dict[str, Any]:
        """Store and publish a view of `symbol` (view_write.lua, as calc does); returns it."""
        self._ts_us += 1_000
        self._n += 1
        view = {
            "symbol": symbol, "last_price": price, "last_ts": us_to_iso(self._ts_us),
            "last_event_id": f"v{self._n}", **extra,
        }  # fmt: skip
        with self.redis.pipeline(transaction=True) as pipe:
            queue_write(
                pipe, self.keys, self.ring, symbol=symbol, view=view, last_ts_us=self._ts_us,
                last_event_id=view["last_event_id"], now_us=self._ts_us,
            )  # fmt: skip
            (written,) = pipe.execute()
        assert written
        return view

    def stored_view(self, symbol: str) -> dict[str, Any]:
        return orjson.loads(self.redis.get(self.keys.view(symbol)) or b"null")

    def last_id_before(self, stream_id: str | None) -> str:
        """The ring id just before `stream_id`."""
        older: Any = self.redis.xrevrange(self.ring.key, max=f"({stream_id}", count=1)
        return older[0][0].decode() if older else "0-0"

    def last_id(self) -> str:
        newest: Any = self.redis.xrevrange(self.ring.key, count=1)
        return newest[0][0].decode() if newest else "0-0"


def tick_event(symbol: str, event_id: str, n: int) -> TickReceived:
    return TickReceived(
        symbol=symbol, ts="2026-12-04T10:00:00Z", price=100.0 + n, volume=1.0, source="s",
        event_id=event_id, count=1,
    )  # fmt: skip


def clients(base_url: str, **params: str) -> list[dict[str, Any]]:
    return httpx.get(base_url + "/clients", params=params, timeout=5).json()


# `stale` is re-evaluated against the wall clock on every API read; everything else is stored.
CLOCK_FIELDS = {"stale"}


def api_views(api_url: str, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """GET /symbols/{symbol} of each symbol that has a view."""
    with httpx.Client(base_url=api_url, timeout=5) as client:
        out = {}
        for symbol in symbols:
            response = client.get(f"/symbols/{symbol}")
            if response.status_code == 200:
                out[symbol] = response.json()
        return out


def without_clock(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in CLOCK_FIELDS}
