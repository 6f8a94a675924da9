"""Webhook receivers for tests: a real HTTP server in a thread of the test process, whose answer
to each request is a behaviour (status codes, Retry-After, sleeping, garbage, redirect loops,
endless or trickling answers), recording every request it got; and firings queued as the
evaluator queues them, whose webhook jobs point at such a receiver.

Hostile behaviours stop as soon as the client goes away, and `close()` releases sleepers, so a
test's teardown never waits for them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from redis import Redis

from backend.bus.alert_firings import queue_firing
from backend.bus.keys import Keys
from backend.bus.realtime import Ring
from backend.core.alerts.conditions import Observation, make_firing
from backend.core.alerts.firing import IDEMPOTENCY_HEADER, Firing
from backend.core.alerts.rules import AlertRule
from backend.settings import Settings


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() when the request was read
    nth: int  # 1 for the first request with this Idempotency-Key, 2 for its repeat, ...

    @property
    def key(self) -> str:
        return self.headers.get(IDEMPOTENCY_HEADER.lower(), "")


Behaviour = Callable[["_Handler", Received], None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.receiver.handle(self, self.path, headers, body)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


@dataclass
class Receiver:
    behaviour: Behaviour
    host: str = "127.0.0.1"
    requests: list[Received] = field(default_factory=list)
    answered: int = 0  # requests whose behaviour returned (a sleeper counts once it woke)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: Counter[str] = field(default_factory=Counter)
    _server: _Server | None = None

    def start(self) -> Receiver:
        self._server = _Server((self.host, 0), _Handler)
        self._server.receiver = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}/hook"

    def handle(self, handler: _Handler, path: str, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            key = headers.get(IDEMPOTENCY_HEADER.lower(), "")
            self._seen[key] += 1
            got = Received(path, headers, body, time.monotonic(), self._seen[key])
            self.requests.append(got)
        try:
            self.behaviour(handler, got)
        except OSError:  # the client hung up on us: exactly what hostile behaviours expect
            handler.close_connection = True
        finally:
            with self._lock:
                self.answered += 1

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.requests)


@contextlib.contextmanager
def receiving(behaviour: Behaviour, host: str = "127.0.0.1") -> Iterator[Receiver]:
    """A started receiver, closed (sleepers and streams released) on the way out."""
    receiver = Receiver(behaviour, host).start()
    try:
        yield receiver
    finally:
        receiver.close()


def refused_url(host: str = "127.0.0.1") -> str:
    """A URL on which nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return f"http://{host}:{port}/hook"


# --- behaviours -----------------------------------------------------------------------------------
def status(code: int, headers: dict[str, str] | None = None) -> Behaviour:
    return lambda h, r: h.reply(code, b"{}", headers)


def first_then(first: Behaviour, then: Behaviour) -> Behaviour:
    """`first` for the first request of each alert, `then` for its repeats."""
    return lambda h, r: (first if r.nth == 1 else then)(h, r)


def sleeper(seconds: float) -> Behaviour:
    """Answer 200, but only after `seconds` (or when the receiver closes)."""

    def behave(h: _Handler, r: Received) -> None:
        h.server.receiver.stop.wait(seconds)
        h.reply(200)

    return behave


def gate(opened: threading.Event) -> Behaviour:
    """A sleeper the test releases: answer 200 once `opened` is set (or the receiver closes);
    from then on at once."""

    def behave(h: _Handler, r: Received) -> None:
        while not opened.wait(0.05) and not h.server.receiver.stop.is_set():
            pass
        h.reply(200)

    return behave


def garbage(h: _Handler, r: Received) -> None:
    h.wfile.write(b"\x00\xffthis is not HTTP at all\r\n\r\n")
    h.wfile.flush()
    h.close_connection = True


def redirect_forever(h: _Handler, r: Received) -> None:
    h.reply(302, headers={"Location": r.path + "x"})


def endless_body(status_code: int) -> Behaviour:
    """`status_code`, then body bytes as fast as the client takes them, never ending."""

    def behave(h: _Handler, r: Received) -> None:
        h.send_response(status_code)
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()  # no length, no chunking: the body ends when the connection does
        chunk = b"x" * 65_536
        while not h.server.receiver.stop.is_set():
            h.wfile.write(chunk)
        h.close_connection = True

    return behave


def trickle(every_s: float = 0.2) -> Behaviour:
    """A status line and then one header byte at a time, forever: no read ever times out."""

    def behave(h: _Handler, r: Received) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not h.server.receiver.stop.wait(every_s):
            h.wfile.write(b"a")
            h.wfile.flush()
        h.close_connection = True

    return behave


# --- firings ----------------------------------------------------------------------------------
def webhook_rule(url: str, secret: str | None = None) -> AlertRule:
    """A fresh rule (new id) whose one channel is the webhook `url`."""
    hook: dict[str, object] = {"type": "webhook", "url": url}
    if secret is not None:
        hook["secret"] = secret
    return AlertRule.model_validate(
        {
            "id": f"rule-{uuid.uuid4().hex[:12]}", "version": 1, "name": "delivery",
            "symbol": "DLV", "field": "last_price", "condition": "crosses_above", "value": 100.0,
            "trigger": "every_time", "channels": [hook],
            "created_at": "2026-12-04T00:00:00Z", "updated_at": "2026-12-04T00:00:00Z",
        }
    )  # fmt: skip


def queue_webhook_firings(
    redis: Redis, settings: Settings, url: str, n: int = 1, secret: str | None = None
) -> list[Firing]:
    """`n` firings of a fresh rule whose one channel is the webhook `url`, queued in one MULTI
    with `queue_firing`, exactly as the evaluator queues them (so delivery jobs are the real
    thing); returns the firings."""
    rule = webhook_rule(url, secret)
    keys = Keys.from_settings(settings)
    firings: list[Firing] = []
    now_us = time.time_ns() // 1_000
    with redis.pipeline(transaction=True) as pipe:
        for i in range(n):
            obs = Observation(
                kind="tick",
                ts_us=now_us - 1_000_000 + i,
                event_id=f"e{i}",
                values={"last_price": 101.0},
                price=101.0,
            )
            firing = make_firing(rule, obs, 101.0, "DLV")
            queue_firing(pipe, keys, Ring.from_settings(settings), rule, firing, now_us)
            firings.append(firing)
        pipe.execute()
    return firings
