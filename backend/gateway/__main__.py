"""`python -m backend.gateway [--host H] [--port P]`: the realtime gateway under uvicorn.

The Procfile's `gateway` entry point (port: --port, else GATEWAY_PORT). Like the API, it owns its
process edge: settings built once, uvicorn's loggers configured like every other line.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from backend.logs import configure_logging
from backend.settings import get_gateway_settings
from backend.settings.production import enforce_deploy_policy

SHUTDOWN_GRACE_S = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.gateway", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = get_gateway_settings()
    configure_logging(settings, service="gateway")
    enforce_deploy_policy(settings, "gateway")
    uvicorn.run(
        "backend.gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port or settings.gateway_port,
        log_config=None,
        # A dead client is noticed by its pings; a stalled reader never blocks the others.
        ws_ping_interval=20,
        ws_ping_timeout=20,
        # Streams never finish by themselves: on SIGTERM give them a moment, then cut them. A
        # client resumes from its last id on another replica (or this one, restarted).
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
