"""The container health probe: 0 on a 2xx answer, 1 on any error status or no answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.ops import healthcheck


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/health/liveness" else 503
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthy_on_2xx(server: str) -> None:
    assert healthcheck.main([f"{server}/health/liveness"]) == 0


def test_unhealthy_on_error_status(server: str) -> None:
    assert healthcheck.main([f"{server}/health/readiness"]) == 1


def test_unhealthy_when_nothing_listens() -> None:
    assert healthcheck.main([f"http://127.0.0.1:{_closed_port()}/health/liveness"]) == 1


def test_rejects_a_non_http_url() -> None:
    healthy, reason = healthcheck.probe("file:///etc/passwd")
    assert not healthy and "not an http" in reason


def test_default_is_the_api_liveness_endpoint() -> None:
    assert healthcheck.DEFAULT_URL == "http://127.0.0.1:8000/health/liveness"
