"""Redis lost and back between the gateway and the ring (a TCP proxy cut): readiness says so,
connected clients carry on from where they were, and a client resumes with nothing lost."""

from __future__ import annotations

import base64
import os
import socket as pysocket
import struct
import time
from urllib.parse import urlsplit

import httpx
import pytest
from redis import Redis

from backend.settings import Settings
from tests.integration.gateway.streams import (
    FAST,
    Publisher,
    SseStream,
    StalledClient,
    clients,
    sse,
)
from tests.support.processes import Processes
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def readiness(base: str) -> int:
    try:
        return httpx.get(base + "/health/readiness", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def tick_ids(stream: SseStream) -> list[str]:
    return [f.json()["event_id"] for f in stream.events("tick.received")]


def gateway_behind_a_proxy(
    procs: Processes, settings: Settings, env: dict[str, str] | None = None
) -> TcpProxy:
    """A gateway that reaches Redis through a TCP proxy the test can cut and restore."""
    url = urlsplit(settings.effective_redis_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379).start()
    proxied = settings.effective_redis_url.replace(url.netloc, f"127.0.0.1:{proxy.port}")
    procs.start_gateway(extra_env={**FAST, "REDIS_URL": proxied, **(env or {})})
    return proxy


def test_redis_lost_and_back_readiness_503_then_clients_resume_with_no_loss(
    procs: Processes, redis_client: Redis, settings: Settings
) -> None:
    proxy = gateway_behind_a_proxy(procs, settings)
    base = procs.gateway_url
    publisher = Publisher(redis_client, settings)
    try:
        with sse(base + "/stream") as staying:
            staying.wait_events("snapshot", 1)
            with sse(base + "/stream") as leaving:
                before = publisher.ticks("AAA", 3)
                seen = leaving.wait_events("tick.received", 3)
            staying.wait_events("tick.received", 3)

            proxy.cut()
            wait_for(lambda: readiness(base) == 503, 10, what="readiness 503 while cut")
            body = httpx.get(base + "/health/readiness", timeout=2).json()
            assert body["status"] == "unavailable" and body["ring"] != "connected"
            during = publisher.ticks("AAA", 4)  # written to Redis while the gateway is cut off
            refused = httpx.get(
                base + "/stream", headers={"Last-Event-ID": seen[-1].id or ""}, timeout=5
            )
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert refused.json()["detail"][0]["field"] == "redis"
            # An EventSource (Accept: text/event-stream) would end for good on a 503: it gets a
            # stream that ends at once with a retry hint, and comes back with its last id.
            told = httpx.get(
                base + "/stream",
                headers={"Accept": "text/event-stream", "Last-Event-ID": seen[-1].id or ""},
                timeout=5,
            )
            assert told.status_code == 200
            assert told.headers["content-type"].startswith("text/event-stream")
            assert told.text.startswith("retry: ") and ": not ready: " in told.text
            assert "event:" not in told.text and "data:" not in told.text

            proxy.restore()
            wait_for(lambda: readiness(base) == 200, 20, what="readiness 200 after the heal")
            after = publisher.ticks("AAA", 2)
            with sse(base + "/stream", {"Last-Event-ID": seen[-1].id or ""}) as back:
                back.wait_events("tick.received", 6)
                assert tick_ids(back) == during + after
                assert back.events("reset") == [] and back.events("snapshot") == []
            marker = publisher.ticks("ZZZ", 1)  # the last event: anything twice came before it
            staying.wait_events("tick.received", 10)
            assert tick_ids(staying) == before + during + after + marker
            assert [f.event for f in staying.events()][:1] == ["snapshot"]
            assert staying.events("reset") == []
    finally:
        proxy.cut()


def test_a_resume_cut_off_from_redis_ends_the_stream_so_the_client_reconnects(
    procs: Processes, redis_client: Redis, settings: Settings
) -> None:
    """A client resuming from a long backlog, its catch-up waiting for it to read, when Redis
    goes: the catch-up cannot go on, so the stream must end (EventSource then reconnects with
    its last id), not sit there sending heartbeats with no events ever again."""
    proxy = gateway_behind_a_proxy(procs, settings, {"GATEWAY_CLIENT_QUEUE": "10"})
    base = procs.gateway_url
    publisher = Publisher(redis_client, settings)
    publisher.ticks("AAA", 1)
    start = publisher.last_id()
    symbols = [f"S{n:03d}" for n in range(400)]
    for symbol in symbols:  # ~6 MB: more than the socket buffers of a client that does not read
        publisher.view(symbol, 1.0, padding="x" * 16_000)
    stalled = StalledClient(base, {"Last-Event-ID": start})
    try:
        wait_for(
            lambda: [c for c in clients(base) if not c["live"] and c["queued"] >= 5],
            10, what="the resume waiting for the stalled client to read",
        )  # fmt: skip
        proxy.cut()
        wait_for(lambda: readiness(base) == 503, 10, what="readiness 503 while cut")
        got = stalled.read_to_end(15)
    finally:
        stalled.close()
    received = [f.json()["symbol"] for f in got if f.event == "symbol.updated"]
    assert received == symbols[: len(received)] and len(received) < len(symbols)

    proxy.restore()
    wait_for(lambda: readiness(base) == 200, 20, what="readiness 200 after the heal")
    last = next(f.id for f in reversed(got) if f.id is not None)
    with sse(base + "/stream", {"Last-Event-ID": last}) as resumed:
        rest = resumed.wait_events("symbol.updated", len(symbols) - len(received), timeout=30)
    assert received + [f.json()["symbol"] for f in rest] == symbols
    proxy.cut()


def test_a_websocket_resume_cut_off_from_redis_is_closed_so_the_client_resumes(
    procs: Processes, redis_client: Redis, settings: Settings
) -> None:
    proxy = gateway_behind_a_proxy(procs, settings, {"GATEWAY_CLIENT_QUEUE": "10"})
    base = procs.gateway_url
    publisher = Publisher(redis_client, settings)
    publisher.ticks("AAA", 1)
    start = publisher.last_id()
    for n in range(400):  # ~6 MB: more than a client that does not read buffers
        publisher.view(f"S{n:03d}", 1.0, padding="x" * 16_000)
    stalled = StalledWebSocket(procs.gateway_port, f"/ws?after={start}")
    try:
        wait_for(
            lambda: [c for c in clients(base) if not c["live"] and c["queued"] >= 5],
            10, what="the resume waiting for the client to read",
        )  # fmt: skip
        proxy.cut()
        wait_for(lambda: readiness(base) == 503, 10, what="readiness 503 while cut")
        assert stalled.close_code(15) == 1011
    finally:
        stalled.sock.close()
        proxy.cut()


class StalledWebSocket:
    """A WebSocket opened by hand on a socket with a tiny receive buffer, not read until
    `close_code`: its socket fills, and the gateway's writer for it blocks."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = pysocket.socket()
        self.sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.sock.settimeout(10)
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            assert time.monotonic() < deadline, "no close frame"
            chunk = self.sock.recv(1 << 20)
            assert chunk, "the connection ended without a close frame"
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def close_code(self, timeout: float) -> int:
        """Read frames (server frames are not masked) until a close frame; its code."""
        deadline = time.monotonic() + timeout
        while True:
            first, second = self._read(2, deadline)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2, deadline))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8, deadline))[0]
            payload = self._read(length, deadline)
            if first & 0x0F == 0x8:
                return struct.unpack(">H", payload[:2])[0]
