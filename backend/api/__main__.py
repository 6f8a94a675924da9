"""`python -m backend.api [--host H] [--port P]`: the orchestrator API under uvicorn.

The Procfile's `api` entry point. Running uvicorn from here rather than from its CLI lets the API
own its process edge: its settings are built once, and uvicorn's own loggers (access and error)
are configured like every other line the process writes.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from backend.logs import configure_logging
from backend.settings import get_api_settings
from backend.settings.production import enforce_deploy_policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.api", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = get_api_settings()
    configure_logging(settings, service="api")
    enforce_deploy_policy(settings, "api")
    uvicorn.run(
        "backend.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_config=None,  # keep the handlers configure_logging installed
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
