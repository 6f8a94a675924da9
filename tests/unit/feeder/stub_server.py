"""A real HTTP server on 127.0.0.1 (in a thread) that answers from a script and records requests.

Used instead of mocks so the client's retries, keep-alive and auth run over real sockets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, extra headers, JSON body) for the n-th request (0-based) carrying `payload`.
Reply = tuple[int, dict[str, str], Any]
Script = Callable[[int, dict[str, Any]], Reply]


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class StubServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)


def accept_all(_n: int, _payload: dict[str, Any]) -> Reply:
    return 200, {}, {"status": "accepted"}


def sequence(*replies: Reply) -> Script:
    """Answer with `replies` in order, repeating the last one."""
    return lambda n, _payload: replies[min(n, len(replies) - 1)]


@contextmanager
def stub_server(script: Script = accept_all) -> Iterator[StubServer]:
    lock = threading.Lock()
    state = StubServer(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            payload = json.loads(self.rfile.read(length))
            with lock:
                n = len(state.requests)
                state.requests.append(Recorded(self.path, dict(self.headers), payload))
            status, headers, body = script(n, payload)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
