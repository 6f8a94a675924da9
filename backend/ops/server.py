"""Serve an ops app with uvicorn on a port of its own, inside a running event loop.

The socket is bound here, before uvicorn sees it: uvicorn answers a busy port with `sys.exit`,
which would take the feeder (or a Dramatiq fork) down with it. A busy port is an error in the
log and no endpoints, never a stopped process. uvicorn's signal handling is switched off: the
host process owns SIGINT/SIGTERM (the feeder drains on the first one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the host process keeps its own handlers


def bind(host: str, port: int) -> socket.socket | None:
    """A listening socket on host:port, or None (logged) when the port cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        log.error("ops endpoints not served: cannot listen on %s:%d (%s)", host, port, exc)
        return None
    sock.setblocking(False)
    return sock


def ops_server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    return _QuietServer(config)


async def serve_ops(app: Starlette, host: str, port: int, stopping: asyncio.Event) -> None:
    """Serve until `stopping` is set, then close gracefully; returns at once if the port is busy."""
    sock = bind(host, port)
    if sock is None:
        return
    server = ops_server(app)
    log.info("ops endpoints on http://%s:%d (/health/*, /metrics)", host, port)

    async def stop_when_asked() -> None:
        await stopping.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
        sock.close()
