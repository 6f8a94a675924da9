"""`python -m tasks worker|alerts|history [Dramatiq options]`: one of the Dramatiq worker services.

The Procfile's entry point for `worker` (calc, persistence, alert evaluation), `alerts`
(webhook delivery) and `history` (replays). It is the services' edge: it builds the worker
settings once, configures the parent process's logs like its children's (Dramatiq runs with
`--skip-logging`, so its own formatter never replaces ours), then hands over to Dramatiq's CLI
with the service's broker module.

It also prepares the service's metrics directory (backend.ops.multiprocess) and hands its path to
the worker processes through the environment, before Dramatiq (or prometheus_client) is imported:
both read it once, at import.
"""

from __future__ import annotations

import os
import sys

from backend.logs import configure_logging
from backend.ops.multiprocess import prepare_metrics_dir
from backend.settings import get_worker_settings
from backend.settings.production import enforce_deploy_policy

# Service name (the Procfile's) -> the module Dramatiq imports in each worker process.
SERVICES = {
    "worker": "tasks.worker",
    "alerts": "tasks.delivery_worker",
    "history": "tasks.history_worker",
}


def dramatiq_argv(service: str, options: list[str]) -> list[str]:
    """Dramatiq's command line for `service`."""
    return [SERVICES[service], "--skip-logging", *options]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SERVICES:
        print(
            f"usage: python -m tasks {{{','.join(SERVICES)}}} [dramatiq options]", file=sys.stderr
        )
        return 2
    service, options = argv[0], argv[1:]
    settings = get_worker_settings()
    configure_logging(settings, service=service)
    enforce_deploy_policy(settings, service)
    port = settings.metrics_port(service)
    if port:
        os.environ.update(prepare_metrics_dir(service, port))
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    return int(dramatiq_main(make_argument_parser().parse_args(dramatiq_argv(service, options))))


if __name__ == "__main__":
    raise SystemExit(main())
