"""One Server-Sent Events connection to the realtime gateway's `/stream`, read until it ends.

`read_stream` does one attempt: connect (sending the API key and, when resuming, `Last-Event-ID`),
hand every message to the caller, and raise `StreamLost` when the connection fails or ends. The
caller (`ui.live_feed.LiveFeed`) owns the reconnect loop and its backoff; this module owns only
the HTTP. `interrupt` shuts the live socket down from another thread, so a feed stops at once
instead of waiting for the next heartbeat.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from httpx_sse import SSEError, connect_sse

STREAM_PATH = "/stream"
RETRY_AFTER_MAX_S = 60.0


class StreamLost(Exception):
    """The connection failed or ended; `retry_after` is the gateway's hint (503), if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where the stream is and how to open it: the gateway's base URL, the key, the timeouts.

    `read_timeout` must exceed the gateway's heartbeat (GATEWAY_HEARTBEAT_S, 15 s by default):
    silence longer than that means the connection is gone even if no error says so.
    """

    gateway_url: str
    api_key: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 45.0

    @property
    def url(self) -> str:
        return self.gateway_url.rstrip("/") + STREAM_PATH

    def headers(self, last_id: str | None) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        if last_id:
            headers["Last-Event-ID"] = last_id
        return headers


class StreamHandle:
    """The socket of the connection being read, so another thread can cut it (`interrupt`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._interrupted = False

    def attach(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._socket = sock
            interrupted = self._interrupted
        if interrupted:
            self.interrupt()

    def detach(self) -> None:
        with self._lock:
            self._socket = None

    def interrupt(self) -> None:
        """Wake the reader blocked on the socket (shutdown does, close does not)."""
        with self._lock:
            self._interrupted = True
            sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def read_stream(
    target: StreamTarget,
    last_id: Callable[[], str | None],
    on_open: Callable[[], None],
    on_message: Callable[[str, str, str | None], None],
    handle: StreamHandle,
) -> None:
    """One connection: `on_open` once the gateway accepted it, then `on_message(event, data,
    id)` per message (id None when the message has none); raises `StreamLost` when it ends."""
    timeout = httpx.Timeout(target.read_timeout, connect=target.connect_timeout)
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            connect_sse(client, "GET", target.url, headers=target.headers(last_id())) as source,
        ):
            response = source.response
            if response.status_code != 200:
                response.read()
                raise StreamLost(
                    f"HTTP {response.status_code}: {response.text[:200]}",
                    _retry_after(response),
                )
            handle.attach(response)
            try:
                on_open()
                # A message without an `id:` line (reset, missed) carries the previous one (the
                # SSE spec's "last event ID buffer"): the position is unchanged, which is right.
                for message in source.iter_sse():
                    if not message.data:
                        continue  # the `retry:` hint the stream opens with: no message
                    on_message(message.event, message.data, message.id or None)
            finally:
                handle.detach()
    except (httpx.HTTPError, SSEError, OSError) as exc:
        raise StreamLost(describe(exc)) from exc
    raise StreamLost("the gateway closed the stream")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers.get("retry-after", "")), RETRY_AFTER_MAX_S)
    except ValueError:
        return None


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
