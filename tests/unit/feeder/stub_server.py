"""A real HTTP server on 127.0.0.1 (in a thread) that answers from a script and records requests.

Used instead of mocks so the client's retries, keep-alive, batching and auth run over real
sockets. `script` answers every request not matched in `routes` ("METHOD /path" -> script).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, extra headers, JSON body) for the n-th request (0-based) carrying `payload`
# (the parsed JSON body; a list for batches, None for a GET).
Reply = tuple[int, dict[str, str], Any]
Script = Callable[[int, Any], Reply]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    payload: Any


@dataclass
class StubServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)

    def to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in list(self.requests) if r.method == method and r.path == path]


def accept_all(_n: int, _payload: Any) -> Reply:
    return 200, {}, {"status": "accepted"}


def accept_batches(_n: int, payload: Any) -> Reply:
    """`POST /ingest/ticks`'s answer when every item is new."""
    return 200, {}, {"accepted": len(payload), "duplicates": 0, "rejected": []}


def sequence(*replies: Reply) -> Script:
    """Answer with `replies` in order, repeating the last one."""
    return lambda n, _payload: replies[min(n, len(replies) - 1)]


@contextmanager
def stub_server(
    script: Script = accept_all, routes: dict[str, Script] | None = None, port: int = 0
) -> Iterator[StubServer]:
    lock = threading.Lock()
    state = StubServer(url="")
    counts: dict[str, int] = {}
    routes = routes or {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length", "0"))
            payload = json.loads(self.rfile.read(length)) if length else None
            route = f"{method} {self.path}"
            with lock:
                state.requests.append(Recorded(method, self.path, dict(self.headers), payload))
                key = route if route in routes else ""
                n = counts[key] = counts.get(key, -1) + 1
            status, headers, body = routes.get(route, script)(n, payload)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: fine here
                self.close_connection = True

        def do_POST(self) -> None:
            self._handle("POST")

        def do_GET(self) -> None:
            self._handle("GET")

        def log_message(self, *_args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
