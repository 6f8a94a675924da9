"""`python -m backend.gateway [--host H] [--port P]`: the realtime gateway under uvicorn.

The Procfile's `gateway` entry point (port: --port, else GATEWAY_PORT). Like the API, it owns its
process edge: settings built once, uvicorn's loggers configured like every other line.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from backend.logs import configure_logging
from backend.settings import get_gateway_settings
from backend.settings.production import enforce_deploy_policy

SHUTDOWN_GRACE_S = 2
# Each client's kernel send buffer (inherited from the listening socket). Linux autotunes it up
# to ~4 MB, which a client that stopped reading fills at the gateway's expense; a live client
# needs far less (its events go out as they come), and the gateway's own bounded queue holds the
# rest, coalesced.
SEND_BUFFER_BYTES = 256 * 1024


def listening_socket(host: str, port: int) -> socket.socket:
    """The gateway's socket, bound, with the per-client send buffer its connections inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.gateway", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = get_gateway_settings()
    configure_logging(settings, service="gateway")
    enforce_deploy_policy(settings, "gateway")
    config = uvicorn.Config(
        "backend.gateway.app:create_app",
        factory=True,
        log_config=None,
        # A dead client is noticed by its pings; a stalled reader never blocks the others.
        ws_ping_interval=20,
        ws_ping_timeout=20,
        # Streams never finish by themselves: on SIGTERM give them a moment, then cut them. A
        # client resumes from its last id on another replica (or this one, restarted).
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    sock = listening_socket(args.host, args.port or settings.gateway_port)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
